"""The `spectralmix` command line: `spectralmix train digits [--backend jax] ...`.

Training prints Keras's progress bar; the last line of output is one JSON object of metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

BACKENDS = ("jax", "tensorflow", "torch")
TOKEN_MIXERS = ("fftnet", "fnet", "attention")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spectralmix", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a model on a task and print its metrics")
    train.add_argument("task", choices=["digits"], help="digits: scikit-learn's 8x8 digits")
    train.add_argument(
        "--backend",
        choices=BACKENDS,
        help="Keras backend (default: KERAS_BACKEND or Keras's own default)",
    )
    train.add_argument("--token-mixer", choices=TOKEN_MIXERS, default="fftnet")
    train.add_argument("--epochs", type=_positive_int, default=40)
    train.add_argument("--batch-size", type=_positive_int, default=32)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.backend:
        if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != args.backend:
            raise SystemExit("--backend must be chosen before Keras is imported")
        os.environ["KERAS_BACKEND"] = args.backend
    from spectralmix.tasks import digits

    metrics = digits.train(
        epochs=args.epochs,
        batch_size=args.batch_size,
        token_mixer=args.token_mixer,
        seed=args.seed,
        verbose=0 if args.quiet else 1,
    )
    print(json.dumps(metrics), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
