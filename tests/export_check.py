"""Runs an exported artifact in its target runtime alone: no Keras, no spectralmix.

`python tests/export_check.py FORMAT ARTIFACT INPUTS.npz OUTPUTS.npz [ARTIFACT INPUTS.npz
OUTPUTS.npz ...]` loads each artifact with the runtime only (`tf.saved_model.load` for a
SavedModel, onnxruntime for ONNX, `ai_edge_litert.interpreter` for LiteRT), feeds every array
of its INPUTS.npz (one per batch size) and writes the outputs under the same names, plus
`imported`: which of keras / spectralmix / tensorflow / torch / jax ended up imported. Several
artifacts of one format share the process (and its runtime's import).

Keras, spectralmix, JAX and PyTorch (and TensorFlow, except for a SavedModel) are blocked from
importing before the runtime loads: `import tensorflow` alone would import Keras (and through
it JAX) where they are installed, so blocking them is what shows the artifact needs none.
"""

from __future__ import annotations

import sys

import numpy as np


def _saved_model(path):
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    serve = loaded.signatures["serving_default"]
    (name,) = serve.structured_input_signature[1]

    def run(x):
        outputs = serve(**{name: tf.constant(x)})
        (value,) = outputs.values()
        return value.numpy()

    return run


def _onnx(path):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    (spec,) = session.get_inputs()
    return lambda x: session.run(None, {spec.name: x})[0]


def _litert(path):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    (signature,) = interpreter.get_signature_list().values()
    (name,) = signature["inputs"]
    runner = interpreter.get_signature_runner()

    def run(x):
        (value,) = runner(**{name: x}).values()
        return value

    return run


RUNTIMES = {"tf_saved_model": _saved_model, "onnx": _onnx, "litert": _litert}


def main() -> None:
    fmt, *triples = sys.argv[1:]
    if not triples or len(triples) % 3:
        sys.exit(f"usage: {sys.argv[0]} FORMAT ARTIFACT INPUTS.npz OUTPUTS.npz [...]")
    blocked = ["keras", "spectralmix", "jax", "torch"]
    if fmt != "tf_saved_model":
        blocked.append("tensorflow")
    for name in blocked:
        sys.modules[name] = None  # `import name` now raises ImportError
    for artifact, inputs, outputs in zip(triples[::3], triples[1::3], triples[2::3], strict=True):
        run = RUNTIMES[fmt](artifact)
        with np.load(inputs) as data:
            results = {key: np.asarray(run(data[key])) for key in data.files}
        watched = ("keras", "spectralmix", "tensorflow", "torch", "jax")
        results["imported"] = np.array([m for m in watched if sys.modules.get(m) is not None])
        np.savez(outputs, **results)


if __name__ == "__main__":
    main()
