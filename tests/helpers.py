"""Shared test machinery: closeness checks, gradients on the active backend, weight mapping
from Keras layers to the oracle, and the common layer checks (serialization, symbolic and
eager calls, a training step, mixed precision)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence

import keras
import numpy as np
from keras import ops

from tests.tolerances import TOLERANCES

BACKEND = keras.config.backend()


def assert_close(actual, expected, kind: str = "float32_op", scale: bool = False) -> None:
    """`|actual - expected| <= tol * (1 + |expected|)`; with `scale`, relative to max|expected|."""
    tol = TOLERANCES[kind]
    actual = np.asarray(ops.convert_to_numpy(actual), dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    atol = tol * max(1.0, float(np.abs(expected).max(initial=0.0))) if scale else tol
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=atol)


def to_numpy(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


def value_and_grads(layer: keras.layers.Layer, x: np.ndarray, cotangent: np.ndarray, **call_kwargs):
    """`(y, dL/dx, [dL/dw for w in layer.trainable_weights])` for `L = sum(layer(x) * cotangent)`,
    with the active backend's own autodiff."""
    x = x.astype("float32")
    cotangent = cotangent.astype("float32")
    if not layer.built:
        layer(x, **call_kwargs)
    if BACKEND == "jax":
        import jax

        trainable = [v.value for v in layer.trainable_variables]
        non_trainable = [v.value for v in layer.non_trainable_variables]

        def loss(xx, tv):
            y, _ = layer.stateless_call(tv, non_trainable, xx, **call_kwargs)
            return (y * cotangent).sum(), y

        # jit: one compilation instead of one per primitive (see `jax_jit`).
        value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
        (_, y), (gx, gw) = value_and_grad(jax.numpy.asarray(x), trainable)
        return to_numpy(y), to_numpy(gx), [to_numpy(g) for g in gw]
    if BACKEND == "tensorflow":
        import tensorflow as tf

        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = layer(xt, **call_kwargs)
            loss = tf.reduce_sum(y * cotangent)
        gx, *gw = tape.gradient(loss, [xt, *layer.trainable_variables])
        return to_numpy(y), to_numpy(gx), [to_numpy(g) for g in gw]
    if BACKEND == "torch":
        import torch

        xt = torch.tensor(x, requires_grad=True)
        for v in layer.trainable_variables:
            v.value.grad = None
        y = layer(xt, **call_kwargs)
        (y * torch.tensor(cotangent)).sum().backward()
        grads = [v.value.grad for v in layer.trainable_variables]
        return to_numpy(y.detach()), to_numpy(xt.grad), [to_numpy(g) for g in grads]
    raise NotImplementedError(f"No autodiff helper for backend {BACKEND!r}")


def finite_difference_grads(
    fn: Callable[..., np.ndarray], args: Sequence[np.ndarray], cotangent: np.ndarray, h=1e-6
) -> list[np.ndarray]:
    """Central differences of `sum(fn(*args) * cotangent)` in float64, for every argument."""
    args = [np.array(a, dtype=np.float64) for a in args]
    grads = []
    for arg in args:
        grad = np.zeros_like(arg)
        flat, gflat = arg.reshape(-1), grad.reshape(-1)
        for i in range(flat.size):
            saved = flat[i]
            flat[i] = saved + h
            plus = float(np.sum(fn(*args) * cotangent))
            flat[i] = saved - h
            minus = float(np.sum(fn(*args) * cotangent))
            flat[i] = saved
            gflat[i] = (plus - minus) / (2 * h)
        grads.append(grad)
    return grads


def weights_by_name(layer: keras.layers.Layer) -> dict[str, np.ndarray]:
    """Trainable weights keyed by their path below `layer`, e.g. `context_dense/kernel`."""
    prefix = layer.path + "/"
    out = {}
    for v in layer.weights:
        path = v.path[len(prefix) :] if v.path.startswith(prefix) else v.path
        out[path] = np.asarray(ops.convert_to_numpy(v), dtype=np.float64)
    return out


def spectral_filter_weights(named: dict[str, np.ndarray], prefix: str = "") -> dict:
    """Keyword weights of `reference.adaptive_spectral_filter` from a layer's named weights."""
    out = {"base_filter": named[prefix + "base_filter"], "bias": named[prefix + "spectral_bias"]}
    if prefix + "context_dense/kernel" in named:
        out.update(
            context_kernel=named[prefix + "context_dense/kernel"],
            context_bias=named[prefix + "context_dense/bias"],
            modulation_kernel=named[prefix + "modulation_dense/kernel"],
            modulation_bias=named[prefix + "modulation_dense/bias"],
        )
    return out


def roundtrip(model: keras.Model, tmp_path) -> keras.Model:
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    return keras.models.load_model(path)


def run_layer_test(
    make_layer: Callable[..., keras.layers.Layer],
    input_shape: tuple,
    tmp_path,
    *,
    expected_trainable: int,
    mixed_kind: str = "float32_model",
    policies: Sequence[str] = ("mixed_bfloat16", "mixed_float16"),
) -> None:
    """The checks every layer passes: symbolic and eager calls agree in shape, config round
    trip, `.keras` round trip with identical outputs, one `fit` step changes the weights and
    gives a finite loss, and both mixed-precision policies train with finite values."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, *input_shape)).astype("float32")

    layer = make_layer()
    inputs = keras.Input(input_shape)
    outputs = layer(inputs)
    assert tuple(outputs.shape) == (None, *input_shape)
    assert tuple(layer.compute_output_shape((None, *input_shape))) == (None, *input_shape)
    model = keras.Model(inputs, outputs)
    assert len(layer.trainable_weights) == expected_trainable
    eager = to_numpy(layer(x))
    assert eager.shape == x.shape
    assert np.isfinite(eager).all()

    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()

    loaded = roundtrip(model, tmp_path)
    assert_close(loaded(x), eager, mixed_kind)

    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    before = [to_numpy(w).copy() for w in model.trainable_weights]
    history = model.fit(x, np.zeros_like(x), epochs=1, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    if before:
        after = [to_numpy(w) for w in model.trainable_weights]
        assert any(not np.array_equal(a, b) for a, b in zip(after, before, strict=True))

    for policy in policies:
        mixed = make_layer(dtype=policy)
        mixed_inputs = keras.Input(input_shape)
        mixed_model = keras.Model(mixed_inputs, mixed(mixed_inputs))
        mixed_model.set_weights(model.get_weights())
        out = mixed_model(x)
        assert keras.backend.standardize_dtype(out.dtype) == policy.split("_")[1]
        assert_close(out, to_numpy(model(x)), policy, scale=True)
        mixed_model.compile(optimizer="adam", loss="mse")
        loss = mixed_model.fit(x, np.zeros_like(x), epochs=1, verbose=0).history["loss"][0]
        assert np.isfinite(loss)


def jax_jit(fn: Callable) -> Callable:
    """`jax.jit(fn)` on JAX, `fn` elsewhere: for pure functions of tensors called once per
    shape. Eager JAX compiles every primitive for every new shape (about a second per call of
    a spectral core); one compilation of the whole function takes a fraction of that. TF and
    torch run eagerly with no such cost."""
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    return fn


def grad_of(fn: Callable, args: Sequence[np.ndarray], cotangent: np.ndarray, framework: str):
    """Gradients of `sum(fn(*args) * cotangent)` w.r.t. every argument, using `framework`'s own
    autodiff on its native tensors (float32 unless the arguments are float64)."""
    if framework == "jax":
        import jax
        import jax.numpy as jnp

        def loss(*a):
            return jnp.sum(fn(*a) * jnp.asarray(cotangent, a[0].dtype))

        # One XLA compilation of the whole gradient: eager JAX would compile every primitive
        # for every new shape, several seconds per test.
        grad_fn = jax.jit(jax.grad(loss, argnums=tuple(range(len(args)))))
        grads = grad_fn(*[jnp.asarray(a) for a in args])
        return [np.asarray(g) for g in grads]
    if framework == "tensorflow":
        import tensorflow as tf

        tensors = [tf.constant(a) for a in args]
        with tf.GradientTape() as tape:
            for t in tensors:
                tape.watch(t)
            loss = tf.reduce_sum(fn(*tensors) * tf.constant(cotangent, tensors[0].dtype))
        return [g.numpy() for g in tape.gradient(loss, tensors)]
    if framework == "torch":
        import torch

        tensors = [torch.tensor(a, requires_grad=True) for a in args]
        out = fn(*tensors)
        (out * torch.tensor(cotangent, dtype=out.dtype)).sum().backward()
        return [t.grad.numpy() for t in tensors]
    raise NotImplementedError(framework)


@contextlib.contextmanager
def registered_mixers(mixers: dict[str, type]):
    """Registers toy token mixers `{name: class}` for the duration of the block."""
    from spectralmix.registry import register_token_mixer, unregister_token_mixer

    for name, cls in mixers.items():
        register_token_mixer(name)(cls)
    try:
        yield tuple(mixers)
    finally:
        for name in mixers:
            unregister_token_mixer(name)
