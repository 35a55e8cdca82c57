"""Sequence (context) parallelism against one device, in a fresh process (device counts are
fixed at framework start): `python -m tests.sequence_parallel_worker BACKEND OUT.npz` with
`KERAS_BACKEND=BACKEND` (`jax`: 8 simulated CPU devices; `torch`: 2 gloo processes).

For every spectral mixer (`MIXERS`) with and without a padding mask, it saves one device's
outputs and gradients (of the inputs and of every weight) of a fixed weighted sum of the
outputs, and the same computed with the tokens split over the devices. Then it trains a small
`FFTNetClassifier` on token sequences whose length the device count does not divide, on one
device (the padded batch) and sequence-parallel, and saves both losses and weights; and the
messages of the bad inputs (a device count not dividing the heads, the channels).
"""

from __future__ import annotations

import os
import random
import sys

import numpy as np

from spectralmix import distribute

#: Devices per backend.
DEVICES = {"jax": 8, "torch": 2}
BATCH, LENGTH, CHANNELS = 2, 16, 16
#: name: (layer class name, arguments); 8 heads and 16 channels split over 8 devices.
MIXERS = {
    "fftnet_v1": ("AdaptiveSpectralFilter", {"num_heads": 8, "max_sequence_length": 12}),
    "fftnet_v2": (
        "AdaptiveSpectralFilter",
        {"num_heads": 8, "max_sequence_length": 16, "variant": "v2"},
    ),
    "fnet": ("FourierMixing", {}),
    "gfnet": ("GlobalFilter", {"max_sequence_length": 16}),
    "gfnet_2d": ("GlobalFilter2D", {"grid_shape": (3, 5), "class_token": True}),
    "hyena_causal": ("HyenaOperator", {"max_sequence_length": 16, "filter_order": 8}),
    "hyena_bidirectional": (
        "HyenaOperator",
        {"max_sequence_length": 16, "filter_order": 8, "causal": False},
    ),
}
#: The classifier trained both ways: 13 tokens, padded to a multiple of the device count.
TRAIN_LENGTH, TRAIN_STEPS, LEARNING_RATE = 13, 3, 0.05


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, LENGTH, CHANNELS)).astype("float32")
    mask = np.ones((BATCH, LENGTH), bool)
    mask[1, 11:] = False  # the second sequence ends at 11
    cotangent = rng.standard_normal((BATCH, LENGTH, CHANNELS)).astype("float32")
    return x, mask, cotangent


def build(name):
    import spectralmix.layers as layers

    class_name, kwargs = MIXERS[name]
    layer = getattr(layers, class_name)(**kwargs)
    layer.build((None, LENGTH, CHANNELS))
    rng = np.random.default_rng(1)
    layer.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in layer.weights])
    return layer


def classifier(mixer="fftnet"):
    from spectralmix.models import FFTNetBackbone, FFTNetClassifier

    backbone = FFTNetBackbone(
        vocabulary_size=12,
        max_sequence_length=16,
        hidden_dim=16,
        num_layers=2,
        num_heads=8,
        token_mixer=mixer,
    )
    return FFTNetClassifier(backbone=backbone, num_classes=3)


def train_data():
    rng = np.random.default_rng(2)
    x = rng.integers(1, 12, (TRAIN_STEPS * 4, TRAIN_LENGTH)).astype("int32")
    x[1, 9:] = 0  # padding
    x[5, 4:] = 0
    return x, rng.integers(0, 3, len(x))


def compile_sgd(model):
    import keras

    model.compile(
        optimizer=keras.optimizers.SGD(LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )


def single_fit(model, x, y):
    """One device, on the batch padded as the sequence-parallel run pads it."""
    import keras

    from spectralmix.sequence_parallel import pad_tokens

    compile_sgd(model)
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(float(logs["loss"]))
    )
    model.fit(pad_tokens(x, DEVICES[os.environ["KERAS_BACKEND"]]), y, batch_size=4,
              shuffle=False, verbose=0, callbacks=[record])  # fmt: skip
    # Keras logs the running mean of the epoch's losses: each step's loss from it.
    return [(i + 1) * m - i * (seen[i - 1] if i else 0.0) for i, m in enumerate(seen)]


def error_of(function):
    try:
        function()
    except ValueError as error:
        return str(error)
    return "no error"


# --- JAX ---------------------------------------------------------------------------------------


def jax_main(out):
    distribute.configure_devices("sequence", DEVICES["jax"], "jax")
    import jax

    from spectralmix import sequence_parallel

    x, mask, cotangent = data()
    results = {}
    for name in MIXERS:
        layer = build(name)
        weights = [v.value for v in layer.trainable_variables]
        for masked in (False, True):
            key = f"{name}/{'mask' if masked else 'nomask'}"
            m = mask if masked else None

            def loss(weights, x, layer=layer, m=m):
                y, _ = layer.stateless_call(weights, [], x, mask=m)
                return (y * cotangent).sum(), y

            for where in ("single", "sharded"):
                # A new function each time: jax.jit caches traces by function.
                step = jax.jit(jax.value_and_grad(lambda w, x: loss(w, x), (0, 1), has_aux=True))
                scope = sequence_parallel.SequenceParallel().scope() if where == "sharded" else None
                with scope or _nothing():
                    (_, y), (grads, grad_x) = step(weights, x)
                    text = jax.make_jaxpr(lambda w, x: loss(w, x))(weights, x).pretty_print()
                results[f"{key}/{where}/all_to_alls"] = text.count("all_to_all")
                results[f"{key}/{where}/y"] = np.asarray(y)
                results[f"{key}/{where}/grad_x"] = np.asarray(grad_x)
                for v, g in zip(layer.trainable_variables, grads, strict=True):
                    results[f"{key}/{where}/grad/{v.path}"] = np.asarray(g)

    # A classifier trained on 13-token sequences: one device on the padded batch, 8 devices.
    random.seed(0)
    x_train, y_train = train_data()
    single = classifier()
    initial = single.get_weights()
    results["train/single_losses"] = single_fit(single, x_train, y_train)
    results["train/single_weights"] = _flat(single.get_weights())
    with distribute.distribution_scope("sequence", DEVICES["jax"]) as engine:
        spread = classifier()
        spread.set_weights(initial)
        results["train/sequence_losses"] = single_fit(spread, x_train, y_train)
        results["train/devices"] = len(engine.device_mesh.devices.flatten())
    results["train/sequence_weights"] = _flat(spread.get_weights())
    results["train/initial_weights"] = _flat(initial)
    results.update(harness_runs())

    # Bad inputs: 8 devices and 4 heads; 8 devices and 12 channels; attention.
    from spectralmix.layers import AdaptiveSpectralFilter, GlobalFilter, SelfAttention

    bad = {
        "heads": (AdaptiveSpectralFilter(num_heads=4), (2, 16, 16)),
        "channels": (GlobalFilter(), (2, 16, 12)),
        "attention": (SelfAttention(num_heads=8), (2, 16, 16)),
    }
    for name, (layer, shape) in bad.items():
        inputs = np.ones(shape, "float32")
        layer(inputs)
        with sequence_parallel.SequenceParallel().scope():
            results[f"error/{name}"] = error_of(lambda layer=layer, i=inputs: layer(i))
    results["error/length"] = error_of(lambda: _call_sharded(build("gfnet"), (2, 12, 16)))
    np.savez(out, **{k: np.asarray(v) for k, v in results.items()})


def _harness_task(length, token_ids):
    """A toy classification task on `token_ids`, batched at `length` tokens; the model is
    built for 15 tokens and a class token whatever `length` is."""
    from spectralmix.tasks import harness

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, len(token_ids)).astype(np.int32)
    splits = {
        name: harness.SequenceData([token_ids[i] for i in part], labels[part])
        for name, part in (("train", range(16)), ("val", range(16, 24)), ("test", range(24, 32)))
    }
    return harness.Task(
        name="toy",
        load=lambda limit: splits,
        build_model=harness.sequence_classifier("toy", vocabulary_size=9, num_classes=2, length=15),
        model_defaults={"hidden_dim": 16, "num_layers": 1, "num_heads": 8, "mlp_ratio": 1.0},
        train_defaults={
            "epochs": 2,
            "batch_size": 8,
            "learning_rate": 1e-2,
            "warmup_steps": 0,
            "weight_decay": 0.0,
        },
        sequence_length=length,
        bucket_step=length,
    )


def harness_runs():
    """The harness with `distribute="sequence"` on 8 devices, on sequences of up to 13 tokens
    and a class token (14: no split over 8), which it pads to 15 (+1 = 16); and on one
    device, the same sequences given already padded to 15 with token 0."""
    import tempfile

    import keras

    from spectralmix.tasks import harness

    rng = np.random.default_rng(0)
    raw = [rng.integers(1, 9, rng.integers(9, 14)).astype(np.int32) for _ in range(32)]
    raw[0] = rng.integers(1, 9, 13).astype(np.int32)  # the longest: 13 tokens
    padded = [np.pad(ids, (0, 15 - len(ids))) for ids in raw]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, task, where in (
            ("single", _harness_task(15, padded), None),
            ("sequence", _harness_task(13, raw), "sequence"),
        ):
            metrics = harness.train(
                task, os.path.join(tmp, name), distribute=where, seed=3, verbose=0
            )
            best = keras.saving.load_model(os.path.join(tmp, name, "best.keras"))
            results[f"harness/{name}_weights"] = _flat(best.get_weights())
            results[f"harness/{name}_val"] = metrics["val_accuracy"]
    return results


def _call_sharded(layer, shape):
    from spectralmix import sequence_parallel

    with sequence_parallel.SequenceParallel().scope():
        layer(np.ones(shape, "float32"))


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _flat(weights):
    return np.concatenate([np.ravel(w) for w in weights])


# --- torch -------------------------------------------------------------------------------------


def torch_process(rank, world, port, out):
    os.environ["KERAS_BACKEND"] = "torch"
    import torch
    import torch.distributed as dist

    from spectralmix import sequence_parallel

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        x, mask, cotangent = data()
        block = slice(rank * LENGTH // world, (rank + 1) * LENGTH // world)
        results = {}
        communicator = sequence_parallel.TorchCommunicator()
        for name in MIXERS:
            layer = build(name)
            for masked in (False, True):
                key = f"{name}/{'mask' if masked else 'nomask'}"
                for where in ("single", "sharded"):
                    rows = block if where == "sharded" else slice(None)
                    inputs = torch.tensor(x[:, rows], requires_grad=True)
                    m = torch.tensor(mask[:, rows]) if masked else None
                    for v in layer.trainable_variables:
                        v.value.grad = None
                    if where == "sharded":
                        with sequence_parallel.scope(communicator):
                            y = layer(inputs, mask=m)
                    else:
                        y = layer(inputs, mask=m)
                    (y * torch.tensor(cotangent[:, rows])).sum().backward()
                    results[f"{key}/{where}/y"] = y.detach().numpy()
                    results[f"{key}/{where}/grad_x"] = inputs.grad.numpy()
                    for v in layer.trainable_variables:
                        grad = v.value.grad
                        grad = torch.zeros_like(v.value) if grad is None else grad.clone()
                        if where == "sharded":  # each shard's loss: the weights' sum of them
                            dist.all_reduce(grad)
                        results[f"{key}/{where}/grad/{v.path}"] = grad.numpy()
        np.savez(f"{out}.rank{rank}.npz", **results)
    finally:
        dist.destroy_process_group()


def torch_main(out):
    import keras
    import torch.multiprocessing as mp

    world = DEVICES["torch"]
    mp.spawn(torch_process, args=(world, distribute._free_port(), out), nprocs=world)
    results = {}
    parts = [dict(np.load(f"{out}.rank{r}.npz")) for r in range(world)]
    for key in parts[0]:
        if "/sharded/y" in key or "/sharded/grad_x" in key:  # the blocks, in order
            results[key] = np.concatenate([p[key] for p in parts], axis=1)
        else:
            results[key] = parts[0][key]
            if "/sharded/grad/" in key:  # all-reduced: the same on every rank
                np.testing.assert_array_equal(parts[1][key], results[key])
    for r in range(world):
        os.remove(f"{out}.rank{r}.npz")

    random.seed(0)
    x_train, y_train = train_data()
    single = classifier()
    initial = single.get_weights()
    results["train/single_losses"] = single_fit(single, x_train, y_train)
    results["train/single_weights"] = _flat(single.get_weights())
    spread = classifier()
    spread.set_weights(initial)
    results["train/sequence_losses"] = distribute.fit_torch_sequence(
        spread,
        x_train,
        y_train,
        num_processes=world,
        batch_size=4,
        optimizer=keras.optimizers.SGD(LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    results["train/devices"] = world
    results["train/sequence_weights"] = _flat(spread.get_weights())
    results["train/initial_weights"] = _flat(initial)

    def fit(model, processes):
        distribute.fit_torch_sequence(
            model, x_train, y_train, num_processes=processes, batch_size=4
        )

    results["error/heads"] = error_of(lambda: fit(classifier(), 16))
    results["error/attention"] = error_of(lambda: fit(classifier("attention"), 2))
    np.savez(out, **{k: np.asarray(v) for k, v in results.items()})


if __name__ == "__main__":
    backend, out = sys.argv[1:]
    assert os.environ.get("KERAS_BACKEND") == backend, "set KERAS_BACKEND to the backend"
    (jax_main if backend == "jax" else torch_main)(out)
