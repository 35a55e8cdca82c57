"""Manual GPU check, not part of the suite: on a machine with a GPU (no TensorFlow needed),
`KERAS_BACKEND=jax python tests/distribute_gpu_check.py jax` (or `torch`). Prints where the
weights live and single-device against distributed losses and weights."""

import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from spectralmix import distribute


def main(backend):
    t0 = time.time()
    if backend == "jax":
        distribute.configure_devices("data", 2, "jax")  # must leave the GPU alone
    import keras
    import numpy as np

    from tests import distribute_worker as w

    random.seed(0)
    (_, build, x, y), (_, build_vit, xi, yi) = w.models(("sequence_fftnet", "vit"))
    for label, b, xx, yy in (("sequence", build, x, y), ("vit", build_vit, xi, yi)):
        single = b()
        init = single.get_weights()
        print(label, "variable on", getattr(single.weights[0].value, "device", None) or
              single.weights[0].value.devices(), flush=True)  # fmt: skip
        s_losses = w.fit(single, xx, yy)
        if backend == "jax":
            modes = (("data", None, None), ("model", 1, 1))
            for mode, n, m in modes:
                with distribute.distribution_scope(mode, n, model_axis_size=m) as engine:
                    model = b()
                    model.set_weights(init)
                    d_losses = w.fit(model, xx, yy)
                devs = engine.device_mesh.devices.flatten().tolist()
                diff = max(
                    float(np.abs(a - c).max())
                    for a, c in zip(model.get_weights(), single.get_weights(), strict=True)
                )
                print(label, mode, "devices", devs, "weights on",
                      model.weights[0].value.devices(), flush=True)  # fmt: skip
                print(label, mode, "single", np.round(s_losses, 6), "dist", np.round(d_losses, 6))
                print(label, mode, "max weight diff", diff, flush=True)
        else:
            model = b()
            model.set_weights(init)
            t = time.time()
            d_losses = distribute.fit_torch_ddp(
                model, xx, yy, num_processes=2, batch_size=w.BATCH, epochs=w.EPOCHS,
                optimizer=keras.optimizers.SGD(w.LEARNING_RATE),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )  # fmt: skip
            diff = max(
                float(np.abs(a - c).max())
                for a, c in zip(model.get_weights(), single.get_weights(), strict=True)
            )
            print(label, "ddp s", round(time.time() - t, 1))
            print(label, "single", np.round(s_losses, 6), "ddp", np.round(d_losses, 6))
            print(label, "max weight diff", diff, flush=True)
    print(backend, "total s", round(time.time() - t0, 1))


if __name__ == "__main__":
    main(sys.argv[1])
