"""Sessions: `nox -l` lists them. Tests run once per Keras backend, each in its own
environment with only that framework installed (pins in `backends/`)."""

from __future__ import annotations

import nox

nox.needs_version = ">=2025.2.9"
nox.options.sessions = ["lint", "tests", "equivalence"]
nox.options.reuse_venv = "yes"

BACKENDS = ["jax", "tensorflow", "torch"]
PYPROJECT = nox.project.load_toml("pyproject.toml")


def _install(session: nox.Session, requirements: str, *groups: str) -> None:
    session.install("-r", f"backends/{requirements}.txt")
    if groups:
        session.install(*nox.project.dependency_groups(PYPROJECT, *groups))
    session.install("-e", ".")


@nox.session
@nox.parametrize("backend", BACKENDS)
def tests(session: nox.Session, backend: str) -> None:
    """The test suite on one Keras backend (`nox -s tests` runs jax, tensorflow and torch)."""
    _install(session, backend, "test")
    session.run(
        "pytest",
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
    session.run("pytest", "-m", "equivalence", *session.posargs)


@nox.session
def distributed(session: nox.Session) -> None:
    """Several devices train like one: JAX DataParallel/ModelParallel on 4 simulated host
    devices, TensorFlow MirroredStrategy on 2 logical CPUs, torch DDP over 2 gloo processes."""
    _install(session, "all", "test")
    session.run("pytest", "-m", "distributed", *session.posargs)


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


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation (mkdocs-material + mkdocstrings) in strict mode."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "docs"))
    session.run("mkdocs", "build", "--strict", "-d", "site", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Main job: train a small FFTNet on scikit-learn's handwritten digits and print its test
    accuracy. `nox -s demo -- --backend torch` picks the framework (default jax)."""
    args = list(session.posargs)
    backend = args[args.index("--backend") + 1] if "--backend" in args else "jax"
    if backend not in BACKENDS:
        session.error(f"--backend must be one of {BACKENDS}. Received: --backend {backend}")
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


@nox.session(default=False, venv_backend="none")
def bench_gpu(session: nox.Session) -> None:
    """GPU benchmarks in the machine's own Python (frameworks with CUDA preinstalled); skips
    with a message where no GPU is visible. Writes benchmarks/results/*-gpu.json."""
    session.run("python", "benchmarks/bench_gpu.py", *session.posargs)
