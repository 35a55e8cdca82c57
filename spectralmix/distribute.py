"""Training on several devices with each framework's own engine.

Nothing here reimplements communication: JAX uses `keras.distribution` (`DataParallel`, or
`ModelParallel` with `fftnet_layout_map`), TensorFlow `tf.distribute.MirroredStrategy`, and
PyTorch `torch.nn.parallel.DistributedDataParallel` (Keras models on torch are
`torch.nn.Module`s; Keras `fit` cannot drive DDP, so `fit_torch_ddp` runs the training loop).

The usual order:

1. `configure_devices(mode, num_devices, backend)` — before the framework runs anything (on
   JAX before `import jax`/`import keras`; on TensorFlow before the first op runs);
2. on JAX and TensorFlow: build, compile and `fit` inside `distribution_scope(mode)`;
   on torch: `fit_torch_ddp(model, x, y, num_processes=...)`.

See `docs/distribution.md` for multi-GPU and multi-host runs.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from spectralmix import validation
from spectralmix.backends import BACKENDS

if TYPE_CHECKING:  # importing Keras here would start JAX before configure_devices
    import keras

__all__ = [
    "BACKENDS",
    "BATCH_AXIS",
    "MODEL_AXIS",
    "MODES",
    "configure_devices",
    "ddp_train_loop",
    "distribution_scope",
    "fftnet_layout_map",
    "fit_torch_ddp",
    "fit_torch_sequence",
]

#: `"data"`: replicate the weights, split each batch. `"model"`: also shard the big weights.
#: `"sequence"`: replicate the weights, split each sequence's tokens (context parallelism,
#: `spectralmix.sequence_parallel`; JAX and torch).
MODES = ("data", "model", "sequence")

#: Name of the device-mesh axis that `fftnet_layout_map` shards weights on.
MODEL_AXIS = "model"
#: Name of the device-mesh axis that carries the batch under `"model"` mode.
BATCH_AXIS = "batch"

_XLA_DEVICE_COUNT = re.compile(r"--xla_force_host_platform_device_count=\S*")


def _check_mode_for_backend(mode: str, backend: str) -> None:
    if mode == "sequence" and backend == "tensorflow":
        raise ValueError(
            "Sequence (context) parallelism is wired for JAX (jax.shard_map) and torch "
            "(torch.distributed all-to-all) only: tf.distribute has no all-to-all between the "
            "replicas inside a step. On TensorFlow use mode='data', or KERAS_BACKEND=jax or "
            "torch. Received: mode='sequence', backend='tensorflow'"
        )
    if mode == "model" and backend == "tensorflow":
        raise ValueError(
            "Model parallelism is wired for the JAX backend only (keras.distribution."
            "ModelParallel); on TensorFlow use mode='data' (tf.distribute.MirroredStrategy) "
            "or KERAS_BACKEND=jax. Received: mode='model', backend='tensorflow'"
        )
    if mode == "model" and backend == "torch":
        raise ValueError(
            "Model parallelism is wired for the JAX backend only (keras.distribution."
            "ModelParallel); on torch use mode='data' (fit_torch_ddp, DistributedDataParallel) "
            "or KERAS_BACKEND=jax. Received: mode='model', backend='torch'"
        )


def configure_devices(mode: str, num_devices: int, backend: str) -> None:
    """Makes `num_devices` CPU devices available to `backend`, for runs without accelerators.

    JAX: sets `--xla_force_host_platform_device_count` in `XLA_FLAGS`, so it must run before
    JAX is imported (importing Keras on the JAX backend imports JAX). TensorFlow: splits the
    physical CPU into `num_devices` logical devices; TensorFlow may be imported already but
    must not have run an op yet. torch: processes are the devices (see `fit_torch_ddp`), so
    only the arguments are checked. Accelerators are left alone: where a machine has GPUs,
    `distribution_scope` uses them instead of the CPU devices.

    Args:
        mode: `"data"`, `"model"` (only on JAX) or `"sequence"` (JAX and torch).
        num_devices: devices (torch: processes) to train on, at least 1.
        backend: `"jax"`, `"tensorflow"` or `"torch"`.

    Raises:
        ValueError: for an unknown `mode` or `backend`, `num_devices < 1`, or model
            parallelism on TensorFlow or torch, or sequence parallelism on TensorFlow.
        TypeError: if `num_devices` is not an int.
        RuntimeError: if JAX or TensorFlow already started with fewer CPU devices.

    Examples:
        >>> configure_devices("data", 0, "jax")
        Traceback (most recent call last):
        ...
        ValueError: `num_devices` must be >= 1. Received: num_devices=0
        >>> configure_devices("model", 2, "tensorflow")
        Traceback (most recent call last):
        ...
        ValueError: Model parallelism is wired for the JAX backend only (keras.distribution.ModelParallel); on TensorFlow use mode='data' (tf.distribute.MirroredStrategy) or KERAS_BACKEND=jax. Received: mode='model', backend='tensorflow'
    """  # noqa: E501
    mode = validation.choice("mode", mode, MODES)
    num_devices = validation.integer("num_devices", num_devices, 1)
    backend = validation.choice("backend", backend, BACKENDS)
    _check_mode_for_backend(mode, backend)
    if backend == "jax":
        _configure_jax(num_devices)
    elif backend == "tensorflow":
        _configure_tensorflow(num_devices)


def _configure_jax(num_devices: int) -> None:
    if "jax" in sys.modules:
        from jax._src import xla_bridge

        if xla_bridge.backends_are_initialized():
            import jax

            have = len(jax.devices("cpu"))
            if have < num_devices:
                raise RuntimeError(
                    f"JAX already started with {have} CPU device(s); call configure_devices "
                    f"before JAX runs anything. Received: num_devices={num_devices}"
                )
            return
    flags = _XLA_DEVICE_COUNT.sub("", os.environ.get("XLA_FLAGS", "")).split()
    flags.append(f"--xla_force_host_platform_device_count={num_devices}")
    os.environ["XLA_FLAGS"] = " ".join(flags)


def _configure_tensorflow(num_devices: int) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
        )
    except RuntimeError as error:
        have = len(tf.config.list_logical_devices("CPU"))
        if have < num_devices:
            raise RuntimeError(
                f"TensorFlow already started with {have} logical CPU device(s); call "
                "configure_devices before TensorFlow runs an op. "
                f"Received: num_devices={num_devices}"
            ) from error


def fftnet_layout_map(
    device_mesh: keras.distribution.DeviceMesh,
    model_axis: str = MODEL_AXIS,
    token_mixers: Sequence[str] | None = None,
) -> keras.distribution.LayoutMap:
    """A `keras.distribution.LayoutMap` that shards FFTNet and FFTNetViT weights on one axis.

    Megatron-style pairs, so each pair needs one reduction: the block MLP (`mlp_dense1` by
    output, `mlp_dense2` by input) and each token mixer's own pairs, as the mixer declares
    them in its `model_parallel_layout` (the adaptive filter's MLP: `context_dense` by output,
    `modulation_dense` by input; attention: the query/key/value projections by head and the
    output projection by head). Everything else (embeddings, norms, spectral filters, heads)
    is replicated. The sharded sizes (the hidden width, the MLP width and, for attention, the
    number of heads) must be divisible by the size of `model_axis`.

    Args:
        device_mesh: the `keras.distribution.DeviceMesh` the layouts refer to.
        model_axis: the mesh axis to shard on.
        token_mixers: the registered mixers whose weights to lay out; a mixer that declares
            no `model_parallel_layout` is an error. Default: every registered mixer that
            declares one.

    Returns:
        The layout map, keyed by regular expressions over variable paths (`re.fullmatch`).

    Examples:
        >>> mesh = keras.distribution.DeviceMesh((1, 1), ["batch", "model"], ["cpu:0"])
        >>> layout = fftnet_layout_map(mesh)
        >>> layout["block_0/token_mixer/context_dense/kernel"].axes
        (None, 'model')
        >>> layout["block_3/mlp_dense2/kernel"].axes
        ('model', None)
        >>> print(layout["block_0/norm1/gamma"])
        None
    """
    import keras

    from spectralmix.registry import get_token_mixer, token_mixer_names

    if model_axis not in device_mesh.axis_names:
        raise ValueError(
            f"`model_axis` must name an axis of the device mesh {list(device_mesh.axis_names)}. "
            f"Received: model_axis={model_axis!r}"
        )
    if token_mixers is None:
        mixers = [get_token_mixer(name) for name in token_mixer_names()]
        mixers = [m for m in mixers if getattr(m, "model_parallel_layout", None) is not None]
    else:
        mixers = [get_token_mixer(name) for name in token_mixers]
        for mixer in mixers:
            if getattr(mixer, "model_parallel_layout", None) is None:
                raise ValueError(
                    f"Token mixer {mixer.token_mixer_name!r} ({mixer.__name__}) declares no "
                    "`model_parallel_layout`, so its weights cannot be laid out for model "
                    "parallelism; give its class one ({} replicates every weight)"
                )
    layout = keras.distribution.LayoutMap(device_mesh)
    any_prefix = "(?:.*/)?"

    def axes(spec: tuple) -> tuple:
        return tuple(model_axis if axis == "model" else axis for axis in spec)

    # Block MLP: D -> mlp_ratio*D (GELU) -> D.
    layout[any_prefix + "mlp_dense1/kernel"] = (None, model_axis)
    layout[any_prefix + "mlp_dense1/bias"] = (model_axis,)
    layout[any_prefix + "mlp_dense2/kernel"] = (model_axis, None)
    for mixer in mixers:
        for path, spec in mixer.model_parallel_layout.items():
            layout[any_prefix + "token_mixer/" + path] = axes(spec)
    return layout


def _accelerators_or_cpus(backend: str) -> list[str]:
    """The device names a scope spreads over: accelerators where present, else CPUs."""
    if backend == "jax":
        import keras

        return list(keras.distribution.list_devices())
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


@contextlib.contextmanager
def distribution_scope(
    mode: str = "data", num_devices: int | None = None, *, model_axis_size: int | None = None
) -> Iterator[Any]:
    """Build, compile and `fit` a Keras model inside this scope to train on several devices.

    JAX: `keras.distribution.DataParallel` (`mode="data"`) or `ModelParallel` over a
    `(batch, model)` device mesh with `fftnet_layout_map` (`mode="model"`). TensorFlow:
    `tf.distribute.MirroredStrategy` (`mode="data"` only). The global batch size passed to
    `fit` is split across the devices (across the batch axis of the mesh), so it must be
    divisible by their number. `mode="sequence"` (JAX): `spectralmix.sequence_parallel.
    SequenceParallel`, every input's token axis split across the devices instead (lengths
    padded to a multiple of their number: `sequence_parallel.pad_tokens`). torch has no such
    scope: use `fit_torch_ddp` or `fit_torch_sequence`.

    Args:
        mode: `"data"` or `"model"`.
        num_devices: how many devices to use (default: all that the framework sees; the first
            `num_devices` are taken).
        model_axis_size: `mode="model"` only: devices per model replica, dividing
            `num_devices` (default: all of them, one replica).

    Yields:
        The `keras.distribution.Distribution` (JAX) or `tf.distribute.Strategy` (TensorFlow).

    Raises:
        ValueError: bad arguments, too few devices, `mode="model"` off JAX, or torch.

    Examples:
        >>> import numpy as np
        >>> if keras.config.backend() != "torch":  # torch: fit_torch_ddp
        ...     with distribution_scope("data", num_devices=1) as engine:
        ...         model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        ...         model.compile(optimizer="sgd", loss="mse")
        ...         _ = model.fit(np.ones((8, 4)), np.zeros((8, 2)), batch_size=4, verbose=0)
        ...     assert type(engine).__name__ in ("DataParallel", "MirroredStrategy")
    """
    import keras

    mode = validation.choice("mode", mode, MODES)
    num_devices = validation.optional_integer("num_devices", num_devices, 1)
    model_axis_size = validation.optional_integer("model_axis_size", model_axis_size, 1)
    if model_axis_size is not None and mode != "model":
        raise ValueError(
            "`model_axis_size` applies to mode='model' only. "
            f"Received: model_axis_size={model_axis_size}, mode={mode!r}"
        )
    backend = keras.config.backend()
    if backend == "torch":
        raise ValueError(
            "Keras `fit` cannot run DistributedDataParallel: on torch train with "
            "spectralmix.distribute.fit_torch_ddp(model, x, y, num_processes=...) instead of "
            "distribution_scope. Received: backend='torch'"
        )
    backend = validation.choice("backend", backend, ("jax", "tensorflow"))
    _check_mode_for_backend(mode, backend)
    devices = _accelerators_or_cpus(backend)
    if num_devices is None:
        num_devices = len(devices)
    if num_devices > len(devices):
        raise ValueError(
            f"`num_devices` exceeds the {len(devices)} device(s) the framework sees; call "
            "configure_devices first to simulate CPU devices. "
            f"Received: num_devices={num_devices}"
        )
    devices = devices[:num_devices]
    if backend == "tensorflow":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy(devices)
        with strategy.scope():
            yield strategy
        return
    if mode == "data":
        distribution = keras.distribution.DataParallel(devices=devices)
    elif mode == "sequence":
        from spectralmix.sequence_parallel import SequenceParallel

        distribution = SequenceParallel(devices)
    else:
        model_axis_size = num_devices if model_axis_size is None else model_axis_size
        if num_devices % model_axis_size:
            raise ValueError(
                "`model_axis_size` must divide `num_devices`. "
                f"Received: model_axis_size={model_axis_size}, num_devices={num_devices}"
            )
        mesh = keras.distribution.DeviceMesh(
            (num_devices // model_axis_size, model_axis_size), [BATCH_AXIS, MODEL_AXIS], devices
        )
        distribution = keras.distribution.ModelParallel(
            layout_map=fftnet_layout_map(mesh), batch_dim_name=BATCH_AXIS
        )
    with distribution.scope():
        yield distribution


def fit_torch_sequence(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    num_processes: int,
    batch_size: int,
    epochs: int = 1,
    optimizer: Any = "sgd",
    loss: Any = "sparse_categorical_crossentropy",
    seed: int = 0,
) -> list[float]:
    """Trains an `FFTNetClassifier` (torch backend) with its sequences split across processes.

    Context parallelism on torch: `num_processes` local processes (gloo on 127.0.0.1, as
    `fit_torch_ddp`), each holding a contiguous block of every sequence's tokens. The token
    ids are padded with 0 (padding, masked) to a multiple of `num_processes` first, as one
    device would see that padded batch. Each process runs the backbone on its block inside
    `spectralmix.sequence_parallel.scope` (the mixers' all-to-alls, the shard's positions),
    the mean pooling adds the real tokens' sums and counts over the processes, and the head
    and the loss are the same on every process. The gradients are averaged over the processes
    (as `DistributedDataParallel` does): the loss counted once per process, and each
    cross-process sum's backward adding the cotangents, that average is the one-device
    gradient. The trained weights are loaded back into `model`.

    Args:
        model: a built `FFTNetClassifier` with `pooling="mean"` (no class token) whose mixers
            have a sequence-parallel form (not attention).
        x: token ids `(samples, length)`, 0 for padding.
        y: labels `(samples,)`.
        num_processes: processes (token blocks), at least 1.
        batch_size: the batch size (every process sees the whole batch, its own tokens).
        epochs: passes over the data (in order; a last partial batch is dropped).
        optimizer: a Keras optimizer or its identifier.
        loss: a Keras loss or its identifier (on the logits the model outputs).
        seed: rank `r` seeds its random state (dropout) with `seed + r`.

    Returns:
        The loss of every step.

    Raises:
        ValueError: bad arguments, another backend or model, or a mixer that cannot be split
            over `num_processes` (attention, or a count not dividing its heads or channels).
    """
    import keras

    from spectralmix import sequence_parallel

    if keras.config.backend() != "torch":
        raise ValueError(
            "fit_torch_sequence trains torch-backend models; on JAX use "
            "distribution_scope('sequence'). "
            f"Received: backend={keras.config.backend()!r}"
        )
    num_processes = validation.integer("num_processes", num_processes, 1)
    batch_size = validation.integer("batch_size", batch_size, 1)
    epochs = validation.integer("epochs", epochs, 1)
    from spectralmix.models import FFTNetClassifier

    if not isinstance(model, FFTNetClassifier) or model.pooling != "mean":
        raise ValueError(
            "fit_torch_sequence trains an FFTNetClassifier with pooling='mean' (a class token "
            "would sit in one process's block). Received: "
            f"{type(model).__name__}, pooling={getattr(model, 'pooling', None)!r}"
        )
    sequence_parallel.check_model(model, num_processes)
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(
            f"`x` and `y` must hold the same number of samples. Received: len(x)={len(x)}, "
            f"len(y)={len(y)}"
        )

    job = {
        "x": sequence_parallel.pad_tokens(x, num_processes),
        "y": y,
        "batch_size": batch_size,
        "epochs": epochs,
        "seed": seed,
    }
    return _run_processes(_train_sequence, model, optimizer, loss, job, num_processes)


def _train_sequence(model, job: dict, rank: int, world_size: int) -> list[float]:
    """`fit_torch_sequence`'s loop in one process: one block of every sequence's tokens."""
    import keras
    import torch
    import torch.distributed as dist

    from spectralmix import sequence_parallel

    communicator = sequence_parallel.TorchCommunicator()
    x, y, batch_size = job["x"], job["y"], job["batch_size"]
    block = x.shape[1] // world_size
    tokens = slice(rank * block, (rank + 1) * block)
    model.train()
    losses = []
    for _ in range(job["epochs"]):
        for start in range(0, len(x) - batch_size + 1, batch_size):
            ids = keras.ops.convert_to_tensor(x[start : start + batch_size, tokens])
            yb = keras.ops.convert_to_tensor(y[start : start + batch_size])
            model.zero_grad()
            with sequence_parallel.scope(communicator):
                logits = _sequence_logits(model, ids, communicator)
            loss = model.compute_loss(y=yb, y_pred=logits, training=True)
            losses.append(float(loss.detach()))
            model.optimizer.scale_loss(loss).backward()
            trainable = model.trainable_weights[:]
            grads = [v.value.grad for v in trainable]
            for grad in grads:  # DDP's average: see the docstring
                if grad is not None:
                    dist.all_reduce(grad)
                    grad /= world_size
            with torch.no_grad():
                model.optimizer.apply(grads, trainable)
    return losses


def _sequence_logits(model: Any, ids: Any, communicator: Any) -> Any:
    """`FFTNetClassifier(pooling="mean")`'s logits from one block of the tokens: the masked
    mean over every process's real tokens (`GlobalAveragePooling1D`'s formula)."""
    from keras import ops

    states = model.backbone(ids, training=True)
    weight = ops.expand_dims(ops.cast(ops.not_equal(ids, 0), states.dtype), -1)
    total = communicator.sum(ops.sum(states * weight, axis=1))
    pooled = total / communicator.sum(ops.sum(weight, axis=1))
    pooled = model.get_layer("head_dropout")(pooled, training=True)
    return model.get_layer("head")(pooled)


def fit_torch_ddp(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    num_processes: int,
    batch_size: int,
    epochs: int = 1,
    optimizer: Any = "sgd",
    loss: Any = "mse",
    shuffle: bool = False,
    seed: int = 0,
) -> list[float]:
    """Trains a Keras model (torch backend) under `DistributedDataParallel` in local processes.

    Spawns `num_processes` processes (`torch.multiprocessing`, gloo backend on 127.0.0.1; on a
    GPU machine they all use Keras's default device, so this is for CPUs and for checks).
    Like any spawning code, the calling script needs an `if __name__ == "__main__":` guard.
    Each rebuilds `model` from its Keras config and weights, wraps it in
    `torch.nn.parallel.DistributedDataParallel` (which all-reduces the gradients), and runs
    `ddp_train_loop` on its share of every global batch. The trained weights (identical on
    every rank) are loaded back into `model`; the optimizer state is not.

    `model` must be serializable (every spectralmix layer and model is; custom objects must
    be registered with `keras.saving.register_keras_serializable` in a module the processes
    import). For several GPUs or hosts, run `ddp_train_loop` under `torchrun` instead (see
    `docs/distribution.md`).

    Args:
        model: a built Keras model on the torch backend.
        x: inputs, a NumPy array with samples on axis 0.
        y: targets, a NumPy array with samples on axis 0.
        num_processes: processes (devices) to train on, at least 1.
        batch_size: the global batch size, divisible by `num_processes`.
        epochs: passes over the data.
        optimizer: a Keras optimizer or its identifier (`"sgd"`, `"adam"`, ...).
        loss: a Keras loss or its identifier.
        shuffle: shuffle the samples every epoch (the same order on every rank).
        seed: seed of the shuffling; rank `r` seeds its random state (dropout) with `seed + r`.

    Returns:
        The loss of every step, averaged over the whole global batch.

    Raises:
        ValueError: bad arguments, or a backend other than torch.
    """
    import keras

    if keras.config.backend() != "torch":
        raise ValueError(
            "fit_torch_ddp trains torch-backend models; on JAX and TensorFlow use "
            f"distribution_scope. Received: backend={keras.config.backend()!r}"
        )
    num_processes = validation.integer("num_processes", num_processes, 1)
    batch_size = validation.integer("batch_size", batch_size, 1)
    epochs = validation.integer("epochs", epochs, 1)
    if batch_size % num_processes:
        raise ValueError(
            "`batch_size` (the global batch) must be divisible by `num_processes`. "
            f"Received: batch_size={batch_size}, num_processes={num_processes}"
        )
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(
            f"`x` and `y` must hold the same number of samples. Received: len(x)={len(x)}, "
            f"len(y)={len(y)}"
        )

    job = {
        "x": x,
        "y": y,
        "batch_size": batch_size,
        "epochs": epochs,
        "shuffle": shuffle,
        "seed": seed,
    }
    return _run_processes(_train_ddp, model, optimizer, loss, job, num_processes)


def _run_processes(train, model, optimizer, loss, job: dict, num_processes: int) -> list[float]:
    """Spawns `num_processes` gloo processes that each rebuild `model` (with its weights,
    `optimizer` and `loss`) and run `train(model, job, rank, world_size) -> losses`; sets
    `model`'s weights to rank 0's result and returns its losses."""
    import keras
    import torch.multiprocessing as mp

    job = {
        **job,
        "model": keras.saving.serialize_keras_object(model),
        "weights": [np.asarray(w) for w in model.get_weights()],
        "optimizer": keras.optimizers.serialize(keras.optimizers.get(optimizer)),
        "loss": keras.losses.serialize(keras.losses.get(loss)),
        "port": _free_port(),
    }
    with tempfile.TemporaryDirectory() as folder:
        result = os.path.join(folder, "result.npz")
        mp.spawn(_process, args=(num_processes, train, job, result), nprocs=num_processes)
        with np.load(result) as data:
            model.set_weights([data[f"w{i}"] for i in range(len(model.weights))])
            return [float(v) for v in data["losses"]]


def _process(rank: int, world_size: int, train, job: dict, result: str) -> None:
    """One spawned process: joins the gloo group, rebuilds and compiles the model, runs
    `train`; rank 0 saves the losses and weights."""
    os.environ["KERAS_BACKEND"] = "torch"
    import keras
    import torch
    import torch.distributed as dist

    import spectralmix.layers
    import spectralmix.models  # noqa: F401  (registers the classes for deserialization)

    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{job['port']}",
        rank=rank,
        world_size=world_size,
    )
    try:
        # Not keras.utils.set_random_seed: it imports TensorFlow where installed (seconds).
        # Each rank its own stream, as separate devices would draw separate dropout masks.
        random.seed(job["seed"] + rank)
        torch.manual_seed(job["seed"] + rank)
        model = keras.saving.deserialize_keras_object(job["model"])
        model.set_weights(job["weights"])
        model.compile(
            optimizer=keras.optimizers.deserialize(job["optimizer"]),
            loss=keras.losses.deserialize(job["loss"]),
        )
        losses = train(model, job, rank, world_size)
        if rank == 0:
            weights = {f"w{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}
            np.savez(result, losses=np.asarray(losses), **weights)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_ddp(model, job: dict, rank: int, world_size: int) -> list[float]:
    """`fit_torch_ddp`'s loop in one process."""
    return ddp_train_loop(
        model,
        job["x"],
        job["y"],
        batch_size=job["batch_size"],
        epochs=job["epochs"],
        shuffle=job["shuffle"],
        seed=job["seed"],
    )


def ddp_train_loop(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int,
    epochs: int = 1,
    shuffle: bool = False,
    seed: int = 0,
) -> list[float]:
    """Keras's torch `train_step`, with the model wrapped in `DistributedDataParallel`.

    Runs in every process of an initialised `torch.distributed` process group (spawned by
    `fit_torch_ddp`, or started by `torchrun`). `model` must be compiled (its loss and
    optimizer are used) and hold the same weights on every rank — DDP broadcasts rank 0's
    at wrapping. Every rank walks the same global batches and takes its contiguous share of
    each; DDP averages the gradients, so a step equals one single-device step on the global
    batch (for losses that are means over the batch). A last partial batch is dropped.

    Args:
        model: a compiled Keras model on the torch backend.
        x: all the inputs (every rank gets the same arrays).
        y: all the targets.
        batch_size: the global batch size, divisible by the world size.
        epochs: passes over the data.
        shuffle: shuffle the samples every epoch, the same way on every rank.
        seed: seed of the shuffling.

    Returns:
        The loss of every step, averaged over the global batch.

    Raises:
        ValueError: if `model` is not compiled or `batch_size` does not split evenly.
    """
    import keras
    import torch
    import torch.distributed as dist

    if getattr(model, "optimizer", None) is None:
        raise ValueError(
            "ddp_train_loop trains with the model's optimizer and loss: compile the model "
            "first. Received: model.optimizer=None"
        )
    rank, world = dist.get_rank(), dist.get_world_size()
    if batch_size % world:
        raise ValueError(
            "`batch_size` (the global batch) must be divisible by the world size "
            f"{world}. Received: batch_size={batch_size}"
        )
    local = batch_size // world
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    model.train()
    order_rng = np.random.default_rng(seed)
    losses = []
    for _ in range(epochs):
        order = order_rng.permutation(len(x)) if shuffle else np.arange(len(x))
        for start in range(0, len(x) - batch_size + 1, batch_size):
            rows = order[start + rank * local : start + (rank + 1) * local]
            xb = keras.ops.convert_to_tensor(x[rows])  # on Keras's default device
            yb = keras.ops.convert_to_tensor(y[rows])
            model.zero_grad()
            y_pred = ddp(xb, training=True)
            loss = model.compute_loss(x=xb, y=yb, y_pred=y_pred, training=True)
            report = loss.detach().clone()
            loss = model.optimizer.scale_loss(loss)
            loss.backward()
            trainable = model.trainable_weights[:]
            with torch.no_grad():
                model.optimizer.apply([v.value.grad for v in trainable], trainable)
            dist.all_reduce(report)
            losses.append(float(report) / world)
    return losses
