"""One distributed-training comparison in a fresh process (device counts are fixed at framework
start): `python -m tests.distribute_worker CASE OUT.npz` with `KERAS_BACKEND` set.

Trains the same tiny model from the same weights on the same data with SGD twice — once on one
device with `fit`, once with spectralmix.distribute on several devices — and saves both
per-step losses, the initial and both final weights, and what the distributed run ran on
(replicas; the devices holding each weight; on JAX each weight's sharding).

Cases: `jax_data` (DataParallel, 4 devices), `jax_model` (ModelParallel, 4 devices as a 2×2
batch×model mesh), `tensorflow_data` (MirroredStrategy, 2 logical CPUs), `torch_data`
(DistributedDataParallel, 2 gloo processes).
"""

from __future__ import annotations

import os
import random
import sys

from spectralmix import distribute

#: case: (backend, mode, devices, models trained); one or two tiny models each, to stay fast.
CASES = {
    "jax_data": ("jax", "data", 4, ("sequence_fftnet",)),
    "jax_model": ("jax", "model", 4, ("vit", "sequence_attention")),
    "tensorflow_data": ("tensorflow", "data", 2, ("vit",)),
    "torch_data": ("torch", "data", 2, ("sequence_fftnet",)),
}
STEPS_PER_EPOCH, EPOCHS, BATCH = 2, 2, 8
LEARNING_RATE = 0.02


def models(names):
    """(name, builder, inputs, labels) for each of the tiny models `names`."""
    import numpy as np

    from spectralmix.models import (
        FFTNetBackbone,
        FFTNetClassifier,
        FFTNetViTBackbone,
        FFTNetViTImageClassifier,
    )

    rng = np.random.default_rng(0)
    n = STEPS_PER_EPOCH * BATCH
    out = []
    for mixer in ("fftnet", "attention"):

        def sequence(mixer=mixer):
            backbone = FFTNetBackbone(
                vocabulary_size=20,
                max_sequence_length=16,
                hidden_dim=16,
                num_layers=1,
                num_heads=2,
                token_mixer=mixer,
                class_token=True,
            )
            return FFTNetClassifier(backbone=backbone, num_classes=4)

        tokens = rng.integers(1, 20, (n, 16)).astype("int32")
        out.append((f"sequence_{mixer}", sequence, tokens, rng.integers(0, 4, n)))

    def vit():
        backbone = FFTNetViTBackbone(
            image_size=8, patch_size=2, num_channels=1, hidden_dim=16, num_layers=1, num_heads=2
        )
        return FFTNetViTImageClassifier(backbone=backbone, num_classes=4)

    images = rng.standard_normal((n, 8, 8, 1)).astype("float32")
    out.append(("vit", vit, images, rng.integers(0, 4, n)))
    return [m for m in out if m[0] in names]


def per_step(running_means):
    """Keras logs the running mean of the epoch's losses; recover each step's loss."""
    steps = []
    for k, mean in enumerate(running_means):
        i = k % STEPS_PER_EPOCH
        previous = running_means[k - 1] if i else 0.0
        steps.append((i + 1) * mean - i * previous)
    return steps


def fit(model, x, y):
    import keras

    model.compile(
        optimizer=keras.optimizers.SGD(LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(float(logs["loss"]))
    )
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=[record])
    return per_step(seen)


def main(case: str, out: str) -> None:
    backend, mode, num_devices, names = CASES[case]
    assert os.environ.get("KERAS_BACKEND") == backend, "set KERAS_BACKEND to the case's backend"
    distribute.configure_devices(mode, num_devices, backend)

    import keras
    import numpy as np

    # Seeds Keras's default seed generator. Not keras.utils.set_random_seed: it imports TF.
    random.seed(0)
    results = {}
    for name, build, x, y in models(names):
        single = build()
        initial = single.get_weights()
        for i, w in enumerate(initial):
            results[f"{name}/initial_w{i}"] = np.asarray(w)
        results[f"{name}/single_losses"] = fit(single, x, y)
        for i, w in enumerate(single.get_weights()):
            results[f"{name}/single_w{i}"] = np.asarray(w)

        if backend == "torch":
            model = build()
            model.set_weights(initial)
            losses = distribute.fit_torch_ddp(
                model,
                x,
                y,
                num_processes=num_devices,
                batch_size=BATCH,
                epochs=EPOCHS,
                optimizer=keras.optimizers.SGD(LEARNING_RATE),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
            results[f"{name}/replicas"] = num_devices
        else:
            with distribute.distribution_scope(
                mode, num_devices, model_axis_size=2 if mode == "model" else None
            ) as engine:
                model = build()
                model.set_weights(initial)
                losses = fit(model, x, y)
            if backend == "tensorflow":
                results[f"{name}/replicas"] = engine.num_replicas_in_sync
                # Every weight mirrored: one copy per device.
                for v in model.weights:
                    copies = {c.device for c in getattr(v.value, "values", ())}
                    results[f"{name}/devices/{v.path}"] = len(copies)
            else:
                results[f"{name}/replicas"] = len(engine.device_mesh.devices.flatten())
                # How each weight is laid out: the mesh axis per dimension ("" = replicated).
                for v in model.weights:
                    spec = tuple(v.value.sharding.spec)
                    results[f"{name}/spec/{v.path}"] = np.array(
                        [s or "" for s in spec] + [""] * (len(v.shape) - len(spec))
                    )
                    results[f"{name}/devices/{v.path}"] = len(v.value.sharding.device_set)
        results[f"{name}/distributed_losses"] = losses
        for i, w in enumerate(model.get_weights()):
            results[f"{name}/distributed_w{i}"] = np.asarray(w)
    np.savez(out, **{k: np.asarray(v) for k, v in results.items()})


if __name__ == "__main__":
    main(*sys.argv[1:])
