"""Sessions: `nox -l` lists them. Tests run once per Keras backend, each in its own
environment with only that framework installed (pins in `backends/`)."""

from __future__ import annotations

import functools

import nox

nox.needs_version = ">=2025.2.9"
nox.options.sessions = ["lint", "tests", "equivalence"]
nox.options.reuse_venv = "yes"

BACKENDS = ["jax", "tensorflow", "torch"]
#: pytest-xdist: one worker per core, at most 4 (each worker imports its framework: ~1 GB).
PARALLEL = ["--numprocesses=auto", "--maxprocesses=4"]
PYPROJECT = nox.project.load_toml("pyproject.toml")


def _install(session: nox.Session, requirements: str, *groups: str) -> None:
    session.install("-r", f"backends/{requirements}.txt")
    if groups:
        session.install(*nox.project.dependency_groups(PYPROJECT, *groups))
    session.install("-e", ".")


@nox.session
@nox.parametrize("backend", BACKENDS)
def tests(session: nox.Session, backend: str) -> None:
    """The test suite on one Keras backend (`nox -s tests` runs jax, tensorflow and torch), on
    up to 4 processes. Tests marked slow run only with SPECTRALMIX_RUN_SLOW=1 (CI sets it)."""
    _install(session, backend, "test")
    session.run(
        "pytest",
        *PARALLEL,
        "-m",
        "not equivalence and not distributed and not export",
        *session.posargs,
        env={"KERAS_BACKEND": backend},
    )


@nox.session
def equivalence(session: nox.Session) -> None:
    """Cross-backend checks: a .keras file saved under each backend loads under the other two
    with the same outputs and gradients (all three frameworks in one environment)."""
    _install(session, "all", "test")
    session.run("pytest", *PARALLEL, "-m", "equivalence", *session.posargs)


@nox.session
def distributed(session: nox.Session) -> None:
    """Several devices train like one: JAX DataParallel/ModelParallel on 4 simulated host
    devices, TensorFlow MirroredStrategy on 2 logical CPUs, torch DDP over 2 gloo processes."""
    _install(session, "all", "test")
    session.run("pytest", "-m", "distributed", *session.posargs)


@nox.session
def keras_hub(session: nox.Session) -> None:
    """keras-hub interoperability: a spectralmix preset directory loads through
    `keras_hub.models.Backbone.from_preset` (TensorFlow backend; keras-hub needs TensorFlow
    and tensorflow-text whatever the backend)."""
    _install(session, "tensorflow", "test")
    session.install("-r", "backends/keras_hub.txt")
    session.run(
        "pytest", "tests/test_keras_hub.py", *session.posargs, env={"KERAS_BACKEND": "tensorflow"}
    )


@nox.session
def export(session: nox.Session) -> None:
    """Export checks: under each backend in turn (one pytest process each), small models are
    exported to SavedModel, ONNX and LiteRT and run in a fresh process that imports only the
    runtime (all three frameworks, onnxruntime and ai-edge-litert in one environment)."""
    _install(session, "export", "test")
    for backend in BACKENDS:
        session.run(
            "pytest",
            "-m",
            "export",
            "tests/test_export.py",
            *session.posargs,
            env={"KERAS_BACKEND": backend},
        )


#: Checked in a fresh virtualenv holding only the wheel and its dependencies (no framework).
PACKAGE_CHECK = """
import importlib.metadata, importlib.util, os, sys, sysconfig
import spectralmix
assert "keras" not in sys.modules, "import spectralmix imported keras"
here = os.path.dirname(spectralmix.__file__)
assert here.startswith(sysconfig.get_paths()["purelib"]), f"not the installed wheel: {here}"
weights = os.path.join(here, "models", "fftnet", "presets", "fftnet_listops", "model.weights.h5")
assert os.path.getsize(weights) > 1_000_000, weights
assert importlib.metadata.version("spectralmix") == spectralmix.__version__
frameworks = [m for m in ("jax", "tensorflow", "torch") if importlib.util.find_spec(m)]
assert not frameworks, f"a framework was installed with the wheel: {frameworks}"
print("installed", spectralmix.__version__, "at", here)
"""
WEIGHTS_IN_PACKAGE = "spectralmix/models/fftnet/presets/fftnet_listops/model.weights.h5"


@nox.session
def package(session: nox.Session) -> None:
    """Packaging: builds the sdist and the wheel (from the sdist) with `python -m build`,
    checks that both hold the preset weights, installs the wheel alone into a fresh
    virtualenv (no editable install, no framework) and runs `import spectralmix`,
    `spectralmix --help`, `spectralmix --version` and, without a framework, a command that
    must stop with one error line naming the extra to install."""
    import pathlib
    import shutil
    import tarfile
    import zipfile

    session.install("build>=1.2")
    tmp = pathlib.Path(session.create_tmp()).resolve()
    dist, venv = tmp / "dist", tmp / "wheel-venv"
    for path in (dist, venv):
        shutil.rmtree(path, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", str(dist), silent=True)
    (wheel,) = dist.glob("spectralmix-*.whl")
    (sdist,) = dist.glob("spectralmix-*.tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        if WEIGHTS_IN_PACKAGE not in archive.namelist():
            session.error(f"{wheel.name} lacks {WEIGHTS_IN_PACKAGE}")
    with tarfile.open(sdist) as archive:
        if not any(name.endswith(WEIGHTS_IN_PACKAGE) for name in archive.getnames()):
            session.error(f"{sdist.name} lacks {WEIGHTS_IN_PACKAGE}")

    session.run("python", "-m", "venv", str(venv))
    python, spectralmix = str(venv / "bin" / "python"), str(venv / "bin" / "spectralmix")
    run = functools.partial(session.run, external=True, env={"KERAS_HOME": str(tmp)})
    run(python, "-m", "pip", "install", "--quiet", str(wheel))
    session.chdir(str(tmp))  # away from the source tree, which would shadow the wheel
    run(python, "-c", PACKAGE_CHECK)
    run(spectralmix, "--help", silent=True)
    version = run(spectralmix, "--version", silent=True).strip()
    if version != f"spectralmix {PYPROJECT['project']['version']}":
        session.error(f"spectralmix --version printed {version!r}")
    # No framework here: the command stops before Keras with one line naming the extra.
    output = run(spectralmix, "train", "digits", silent=True, success_codes=[2])
    if "is not installed" not in output or 'pip install -e ".[' not in output:
        session.error(f"spectralmix train digits without a framework printed: {output}")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation (mkdocs-material + mkdocstrings) in strict mode, then check the
    built HTML (no list run into a paragraph: tests/test_docs_html.py)."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "docs"), "pytest>=8")
    session.run("mkdocs", "build", "--strict", "-d", "site", *session.posargs)
    # --noconftest: tests/conftest.py imports keras and numpy, which this session lacks.
    session.run(
        "pytest",
        "--noconftest",
        "tests/test_docs_html.py",
        env={"SPECTRALMIX_SITE_DIR": "site"},
    )


def _backend_option(session: nox.Session, args: list[str]) -> str:
    """The value of `--backend B` or `--backend=B` in `args` (default jax); a missing or
    unknown value ends the session with an error naming it."""
    backend = "jax"
    for i, arg in enumerate(args):
        if arg == "--backend":
            if i + 1 == len(args) or args[i + 1].startswith("-"):
                session.error(
                    f"--backend needs a value, one of {BACKENDS}. Received: --backend with none"
                )
            backend = args[i + 1]
        elif arg.startswith("--backend="):
            backend = arg.partition("=")[2]
    if backend not in BACKENDS:
        session.error(f"--backend must be one of {BACKENDS}. Received: --backend {backend!r}")
    return backend


@nox.session
def demo(session: nox.Session) -> None:
    """Main job: train a small FFTNet on scikit-learn's handwritten digits and print its test
    accuracy. `nox -s demo -- --backend torch` picks the framework (default jax)."""
    args = list(session.posargs)
    backend = _backend_option(session, args)
    _install(session, backend)
    session.install("scikit-learn>=1.4")
    session.run("spectralmix", "train", "digits", *args, env={"KERAS_BACKEND": backend})


@nox.session(default=False)
def bench_shims(session: nox.Session) -> None:
    """Benchmark: native spectral cores vs the keras.ops fallback, per framework (CPU).
    Writes benchmarks/results/shims-cpu.json; options after `--` go to the script."""
    _install(session, "all")
    session.run("python", "benchmarks/bench_shims.py", *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """CPU benchmarks: layer speed and memory against sequence length, model training
    throughput, the shim comparison; writes benchmarks/results/*.json and docs/img/*.png.
    Options after `--` go to bench_layers.py (e.g. `-- --lengths 256 4096`)."""
    _install(session, "all")
    session.install("matplotlib>=3.8")
    session.run("python", "benchmarks/bench_layers.py", *session.posargs)
    session.run("python", "benchmarks/bench_models.py")
    session.run("python", "benchmarks/bench_shims.py")
    session.run("python", "benchmarks/plot.py")


@nox.session(default=False)
def bench_long(session: nox.Session) -> None:
    """A million tokens on the CPU: one block's forward+backward time and peak memory at 64K,
    256K and 1M tokens per mixer and backend, the bare FFT pair, the FFTNet mixer over it,
    one device against 8 simulated ones (JAX), a 4-block model's training step; one process
    per point, resumable (points already in benchmarks/results/long-cpu.json are kept unless
    `-- --force`); then the tables and docs/img/long-cpu-*.png. Hours at the defaults;
    options after `--` go to bench_long.py (e.g. `-- --backends jax --lengths 65536`)."""
    _install(session, "all")
    session.install("matplotlib>=3.8")
    session.run("python", "benchmarks/bench_long.py", *session.posargs)
    # The tables and figures of what --out holds (the report reads --out and ignores the rest).
    session.run("python", "benchmarks/bench_long.py", *session.posargs, "--report")


@nox.session(default=False, venv_backend="none")
def bench_gpu(session: nox.Session) -> None:
    """GPU benchmarks in the machine's own Python (frameworks with CUDA preinstalled); skips
    with a message where no GPU is visible. Writes benchmarks/results/*-gpu.json."""
    session.run("python", "benchmarks/bench_gpu.py", *session.posargs)
