"""Framework-native use: the examples of `docs/native.md`, run as they are written.

Each test takes the page's code block for the active backend (the one that sets
`os.environ["KERAS_BACKEND"]` to it), executes it, and checks its results against references
it does not compute itself: the first epoch's loss, chance accuracy (0.1) on held-out digits,
the Keras variables as seen by the framework, and — on JAX — the gradient Keras's own training
step computes. The suite runs once per backend, so two of the three tests skip in every run.
"""

from __future__ import annotations

import linecache
import re
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.helpers import BACKEND, assert_close, to_numpy

DOC = Path(__file__).resolve().parents[1] / "docs" / "native.md"
CODE_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
CHANCE = 0.1  # ten balanced classes
# Held-out accuracy the examples must beat: far above chance, well below what they reach
# (0.8–0.95 measured), so a model that does not learn fails and seeds and thread counts do not.
MIN_ACCURACY = 0.5
# The last epoch's mean training loss must be below this fraction of the first epoch's.
MAX_LOSS_RATIO = 0.5


def only_on(backend: str):
    return pytest.mark.skipif(
        backend != BACKEND,
        reason=f"{backend}-native example: needs KERAS_BACKEND={backend} (active: {BACKEND}); "
        "the suite runs once per backend",
    )


def doc_example(backend: str) -> str:
    marker = f'os.environ["KERAS_BACKEND"] = "{backend}"'
    blocks = [b for b in CODE_BLOCK.findall(DOC.read_text()) if marker in b]
    assert len(blocks) == 1, f"docs/native.md needs exactly one python block with {marker}"
    return blocks[0]


def run_doc_example(backend: str, monkeypatch) -> dict:
    """Executes the page's example for `backend` and returns its global names."""
    # The example sets the variable for a fresh process; here it is already the backend.
    monkeypatch.setenv("KERAS_BACKEND", backend)
    source, filename = doc_example(backend), f"{DOC}[{backend}]"
    # Registered as a source file: tracebacks show the page's lines, and AutoGraph (which reads
    # a tf.function's source) converts the example's functions as it would in a script.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"__name__": f"native_{backend}"}
    exec(compile(source, filename, "exec"), namespace)
    return namespace


def epoch_means(losses: list[float], epochs: int) -> np.ndarray:
    steps = len(losses) // epochs
    assert steps * epochs == len(losses)
    return np.asarray(losses, dtype=np.float64).reshape(epochs, steps).mean(axis=1)


def assert_learned(losses: list[float], epochs: int, accuracy: float) -> None:
    means = epoch_means(losses, epochs)
    assert np.isfinite(means).all(), means
    assert means[-1] < MAX_LOSS_RATIO * means[0], means
    assert accuracy > MIN_ACCURACY > CHANCE, accuracy


def test_examples_cover_each_backend_once():
    for backend in ("jax", "tensorflow", "torch"):
        compile(doc_example(backend), f"{DOC}[{backend}]", "exec")


@only_on("torch")
def test_torch_module_with_keras_layer(monkeypatch):
    import torch

    # The suite shares two cores with other jobs: torch's intra-op threads then spin against
    # each other on these small ops (5x slower measured). Results do not depend on it.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ns = run_doc_example("torch", monkeypatch)
    finally:
        torch.set_num_threads(threads)
    model, block = ns["model"], ns["model"].block
    assert isinstance(block, torch.nn.Module)

    # The Keras variables are the module's parameters, the very tensors, under `block.`.
    in_block = {id(p) for name, p in model.named_parameters() if name.startswith("block.")}
    assert in_block == {id(v.value) for v in block.variables}
    assert len(block.trainable_variables) == 14  # mixer 6, two LayerNorms 4, MLP 4
    for v in block.variables:
        assert v.value.requires_grad == v.trainable, v.path
    others = {id(p) for name, p in model.named_parameters() if not name.startswith("block.")}
    assert len(others) == 5  # embed (2), position (1), head (2)

    # loss.backward() reached every Keras weight and the torch optimizer moved them in place.
    for v in block.trainable_variables:
        grad = v.value.grad
        assert grad is not None, v.path
        assert torch.isfinite(grad).all(), v.path
        assert grad.abs().max() > 0, v.path
    named = {v.path.split("/", 1)[1]: to_numpy(v) for v in block.variables}
    assert not np.allclose(named["token_mixer/base_filter"], 1.0)  # initialised to ones
    assert not np.allclose(named["token_mixer/spectral_bias"], -0.1)  # initialised to -0.1

    assert_learned(ns["losses"], ns["epochs"], ns["test_accuracy"])

    # torch's train()/eval() mode reaches the Keras dropout through `training=self.training`.
    x = torch.from_numpy(ns["x_test"][:8])
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(x), model(x))
        model.train()
        assert not torch.equal(model(x), model(x))


@only_on("jax")
def test_jax_jit_loop_with_optax(monkeypatch):
    import jax

    ns = run_doc_example("jax", monkeypatch)
    model, loss_fn = ns["model"], ns["loss_fn"]
    assert_learned(ns["losses"], ns["epochs"], ns["test_accuracy"])
    assert ns["train_step"]._cache_size() == 1  # one batch shape, one compilation

    # The values written back are the trained ones, in the model's own order.
    for variables, values in (
        (model.trainable_variables, ns["trainable"]),
        (model.non_trainable_variables, ns["non_trainable"]),
    ):
        assert len(variables) == len(values)
        for variable, value in zip(variables, values, strict=True):
            assert np.array_equal(to_numpy(variable), to_numpy(value)), variable.path
    assert len(model.non_trainable_variables) == 5  # the dropout seed states

    # One jitted gradient of the stateless loss equals the gradient Keras's own training step
    # computes (its own loss, its own differentiation of the model, its own optimizer). Plain
    # SGD moves each weight by exactly -lr * grad, so grad = (before - after) / lr; a large lr
    # keeps the float32 rounding of `after` far below the gradient's own. The dropout masks
    # agree because both calls start from the same seed state (`non_trainable`).
    x, y = ns["x_train"][:64], ns["y_train"][:64]
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    (loss, _), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(
        trainable, non_trainable, x, y
    )
    before = [to_numpy(w).astype(np.float64) for w in trainable]  # Keras donates the buffers
    grads = [to_numpy(g) for g in grads]
    lr = 1e3
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    keras_loss = model.train_on_batch(x, y)
    assert_close(keras_loss, to_numpy(loss), "float32_model")
    assert len(grads) == len(model.trainable_variables) > 0
    for variable, value, grad in zip(model.trainable_variables, before, grads, strict=True):
        keras_grad = (value - to_numpy(variable)) / lr
        assert np.abs(grad).max() > 0, variable.path
        assert_close(keras_grad, grad, "float32_grad", scale=True)


@only_on("tensorflow")
def test_tensorflow_data_fit_and_tf_function_loop(monkeypatch):
    import tensorflow as tf

    ns = run_doc_example("tensorflow", monkeypatch)
    assert isinstance(ns["train_data"], tf.data.Dataset)

    # fit on the tf.data pipeline.
    fit_losses = ns["history"].history["loss"]
    assert len(fit_losses) == ns["epochs"]
    assert fit_losses[-1] < MAX_LOSS_RATIO * fit_losses[0], fit_losses
    assert ns["fit_accuracy"] > MIN_ACCURACY

    # The tf.function loop: traced once (one batch shape), trained a fresh model.
    assert ns["train_step"].experimental_get_tracing_count() == 1
    assert_learned(ns["losses"], ns["epochs"], ns["loop_accuracy"])
