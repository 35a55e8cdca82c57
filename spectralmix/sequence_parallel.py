"""Context (sequence) parallelism: the tokens of each sequence sharded over devices.

Every token-local layer (embeddings, norms, MLPs, projections) runs on its shard as it is.
Each spectral mixer runs exactly — the same function as on one device — by an all-to-all from
token shards to channel shards, its transform along the whole length on each device, and an
all-to-all back; the adaptive filter's context (a masked mean over the tokens) is a
cross-device sum of local sums and counts.

The sharded forwards are written once, on `keras.ops` and a `Communicator`:

- JAX: `SequenceParallel`, a `keras.distribution.Distribution` over a one-axis device mesh
  that lays the inputs' token axis (axis 1) over the devices. The model sees global arrays;
  XLA propagates the token sharding through the token-local layers, and each mixer runs
  inside `jax.shard_map` with `jax.lax.all_to_all` and `jax.lax.psum` (`JaxCommunicator`).
- PyTorch: processes are the shards (a `torch.distributed` process group: gloo on CPUs, NCCL
  on GPUs). Inside `scope(TorchCommunicator())` every layer sees its process's tokens; the
  mixers use the differentiable `torch.distributed.nn.functional.all_to_all_single` and
  `all_reduce`, and `PositionEmbedding` adds the rows of its shard's positions.
  `spectralmix.distribute.fit_torch_sequence` trains a classifier that way.
- TensorFlow: not supported (`tf.distribute` has no all-to-all inside a replica context that
  would hold the shards); `spectralmix.distribute` raises a one-line error.

Per mixer (`P` devices, `C` channels):

- `"fftnet"` (`AdaptiveSpectralFilter`): heads sharded; `P` must divide `num_heads`.
- `"fnet"` (`FourierMixing`): the FFT over the channels is token-local; the real and
  imaginary parts go to channel shards, the FFT along the tokens there, the real part back.
- `"gfnet"` (`GlobalFilter`), `"gfnet_2d"` (`GlobalFilter2D`, the whole patch grid and the
  class token's patch mean on each channel shard), `"hyena"` (`HyenaOperator`: the all-to-all
  after the input projection; short convolution, gating and long convolutions on channel
  shards; back before the output projection): `P` must divide the channels.
- `"attention"` (`SelfAttention`): not sharded; a one-line error.

A length that `P` does not divide must be padded (`pad_tokens`: token id 0 and a mask, as the
one-device model pads); the outputs then equal the one-device model's on the padded input.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
from keras import ops

__all__ = [
    "SEQUENCE_AXIS",
    "Communicator",
    "JaxCommunicator",
    "SequenceParallel",
    "TorchCommunicator",
    "check_model",
    "is_active",
    "pad_tokens",
    "process_communicator",
    "scope",
    "shard_positions",
    "sharded_call",
]

#: Name of the device-mesh axis that carries the tokens.
SEQUENCE_AXIS = "sequence"


class Communicator:
    """The collective operations a sharded mixer needs, on one shard of `size`.

    `tokens_to_channels` maps this shard's `(B, N / P, C)` tokens to `(B, N, C / P)`: every
    token, channel block `index` (an all-to-all); `channels_to_tokens` is its inverse; `sum`
    adds a tensor over the shards, with exact gradients (the backward of a sum is the sum of
    the cotangents). Subclasses: `JaxCommunicator`, `TorchCommunicator`.
    """

    size: int

    @property
    def index(self) -> Any:
        """This shard's position, `0 … size - 1` (an int or a scalar int tensor)."""
        raise NotImplementedError

    def tokens_to_channels(self, x: Any) -> Any:
        raise NotImplementedError

    def channels_to_tokens(self, x: Any) -> Any:
        raise NotImplementedError

    def sum(self, x: Any) -> Any:
        raise NotImplementedError


class JaxCommunicator(Communicator):
    """`jax.lax.all_to_all`, `psum` and `axis_index` over mesh axis `axis` (in `shard_map`)."""

    def __init__(self, axis: str, size: int):
        self.axis, self.size = axis, size

    @property
    def index(self):
        import jax

        return jax.lax.axis_index(self.axis)

    def tokens_to_channels(self, x):
        import jax

        return jax.lax.all_to_all(x, self.axis, split_axis=2, concat_axis=1, tiled=True)

    def channels_to_tokens(self, x):
        import jax

        return jax.lax.all_to_all(x, self.axis, split_axis=1, concat_axis=2, tiled=True)

    def sum(self, x):
        import jax

        return jax.lax.psum(x, self.axis)


class TorchCommunicator(Communicator):
    """The differentiable `torch.distributed.nn.functional.all_to_all_single` and
    `all_reduce` over a process group (default: the whole world), one shard per process."""

    def __init__(self, group: Any = None):
        import torch.distributed as dist

        self.group = group
        self.size = dist.get_world_size(group)
        self._index = dist.get_rank(group)

    @property
    def index(self):
        return self._index

    def _all_to_all(self, x):
        """Block `j` of `x`'s first axis to shard `j`; block `k` of the result from shard `k`."""
        import torch
        from torch.distributed.nn.functional import all_to_all_single

        x = x.contiguous()
        with warnings.catch_warnings():  # deprecated for a private module in torch 2.13
            warnings.simplefilter("ignore", FutureWarning)
            return all_to_all_single(torch.empty_like(x), x, group=self.group)

    def tokens_to_channels(self, x):
        batch, tokens, channels = x.shape
        p = self.size
        blocks = x.reshape(batch, tokens, p, channels // p).permute(2, 0, 1, 3)
        received = self._all_to_all(blocks)  # (P, B, n, C/P): token block k from shard k
        return received.permute(1, 0, 2, 3).reshape(batch, p * tokens, channels // p)

    def channels_to_tokens(self, x):
        batch, tokens, channels = x.shape
        p = self.size
        blocks = x.reshape(batch, p, tokens // p, channels).permute(1, 0, 2, 3)
        received = self._all_to_all(blocks)  # (P, B, n, C/P): channel block k from shard k
        return received.permute(1, 2, 0, 3).reshape(batch, tokens // p, p * channels)

    def sum(self, x):
        from torch.distributed.nn.functional import all_reduce

        with warnings.catch_warnings():  # deprecated for a private module in torch 2.13
            warnings.simplefilter("ignore", FutureWarning)
            return all_reduce(x, group=self.group)


# --- where the shards are ---------------------------------------------------------------

_PROCESS_COMMUNICATORS: list[Communicator] = []


@contextlib.contextmanager
def scope(communicator: Communicator) -> Iterator[Communicator]:
    """Every layer called inside sees this process's token shard (PyTorch: one process per
    shard). The mixers communicate through `communicator`; `PositionEmbedding` adds the
    positions of the shard."""
    if not isinstance(communicator, Communicator):
        raise TypeError(
            "`communicator` must be a spectralmix.sequence_parallel.Communicator. "
            f"Received: communicator={communicator!r}"
        )
    _PROCESS_COMMUNICATORS.append(communicator)
    try:
        yield communicator
    finally:
        _PROCESS_COMMUNICATORS.pop()


def _symbolic() -> bool:
    from keras.src.backend.common.symbolic_scope import in_symbolic_scope

    return in_symbolic_scope()


def process_communicator() -> Communicator | None:
    """The communicator of the active per-process `scope`, if any (not while Keras traces
    shapes)."""
    if not _PROCESS_COMMUNICATORS or _symbolic():
        return None
    return _PROCESS_COMMUNICATORS[-1]


def _jax_distribution() -> SequenceParallel | None:
    if keras.config.backend() != "jax":
        return None
    distribution = keras.distribution.distribution()
    return distribution if isinstance(distribution, SequenceParallel) else None


def is_active() -> bool:
    """Whether a mixer called now must run sharded (a per-process `scope`, or a JAX
    `SequenceParallel` distribution outside Keras's shape tracing)."""
    if process_communicator() is not None:
        return True
    return _jax_distribution() is not None and not _symbolic()


def sharded_call(layer: keras.layers.Layer, inputs: Any, mask: Any = None) -> Any:
    """`layer(inputs, mask=mask)` with the tokens sharded: the mixers' hook."""
    forward = _forward_of(layer)
    communicator = process_communicator()
    if communicator is not None:
        _check_shapes(layer, inputs, communicator.size, local=True)
        return forward(layer, inputs, mask, communicator)
    return _jax_distribution().call_sharded(forward, layer, inputs, mask)


def shard_positions(layer: keras.layers.Layer, inputs: Any) -> Any:
    """`PositionEmbedding`'s hook in a per-process `scope`: `inputs` `(B, n, D)` are block
    `index` of the `n · size` tokens, so they get the vectors of those positions (as the whole
    sequence would)."""
    communicator = process_communicator()
    local = inputs.shape[1]
    table = layer._positions(local * communicator.size)
    positions = _shard(table, 0, communicator)
    return inputs + ops.cast(positions, inputs.dtype)


# --- JAX: a keras.distribution.Distribution ------------------------------------------------


class SequenceParallel(keras.distribution.DataParallel):
    """Shards every input's token axis (axis 1) over a one-axis device mesh (JAX): a
    `keras.distribution.DataParallel` whose data layout is the token axis, not the batch.

    Build, compile and `fit` (or call) a model inside `scope()`: weights are replicated,
    inputs of rank 2 and more are laid out along axis 1, and each spectral mixer runs in
    `jax.shard_map` over the mesh (see the module docstring). Input lengths (the token axis,
    with a class token counted) must be multiples of the device count: `pad_tokens`.

    Args:
        devices: the devices (Keras names, e.g. `"cpu:0"`); default: every device
            `keras.distribution.list_devices()` lists.
        sequence_axis: the mesh axis's name.
    """

    def __init__(self, devices=None, sequence_axis=SEQUENCE_AXIS):
        if keras.config.backend() != "jax":
            raise ValueError(
                "SequenceParallel is a JAX distribution; on torch run the model in "
                "spectralmix.sequence_parallel.scope(TorchCommunicator()) in each process "
                "(spectralmix.distribute.fit_torch_sequence). "
                f"Received: backend={keras.config.backend()!r}"
            )
        devices = list(keras.distribution.list_devices() if devices is None else devices)
        mesh = keras.distribution.DeviceMesh((len(devices),), [sequence_axis], devices)
        # DataParallel (Keras exports no Distribution base) with the data layout below.
        super().__init__(device_mesh=mesh)
        self.sequence_axis = sequence_axis

    @property
    def num_devices(self) -> int:
        return int(self.device_mesh.shape[0])

    @property
    def num_model_replicas(self):
        return 1

    def get_data_layout(self, data_shape):
        # Axis 1 split where it divides; else (e.g. token ids that a class token will make
        # divisible) the input is replicated and each mixer's `shard_map` splits its tokens.
        spec = [None] * len(data_shape)
        if len(data_shape) >= 2 and data_shape[1] and data_shape[1] % self.num_devices == 0:
            spec[1] = self.sequence_axis
        return keras.distribution.TensorLayout(spec, self.device_mesh)

    def get_variable_layout(self, variable):
        if getattr(variable, "_layout", None) is not None:
            return variable._layout
        return keras.distribution.TensorLayout([None] * len(variable.shape), self.device_mesh)

    def get_tensor_layout(self, path):
        return None

    def call_sharded(self, forward, layer, inputs, mask):
        """`forward(layer, shard, mask_shard, communicator)` in `jax.shard_map`."""
        import jax
        from jax.sharding import PartitionSpec

        _check_shapes(layer, inputs, self.num_devices, local=False)
        communicator = JaxCommunicator(self.sequence_axis, self.num_devices)
        tokens = PartitionSpec(None, self.sequence_axis, None)
        mesh = self.device_mesh.backend_mesh
        if mask is None:
            body = jax.shard_map(
                lambda x: forward(layer, x, None, communicator),
                mesh=mesh,
                in_specs=(tokens,),
                out_specs=tokens,
            )
            return body(inputs)
        body = jax.shard_map(
            lambda x, m: forward(layer, x, m, communicator),
            mesh=mesh,
            in_specs=(tokens, PartitionSpec(None, self.sequence_axis)),
            out_specs=tokens,
        )
        return body(inputs, mask)


# --- padding -------------------------------------------------------------------------------


def pad_tokens(x: Any, num_devices: int, extra_tokens: int = 0, value: Any = 0) -> np.ndarray:
    """`x` (NumPy, `(batch, length, ...)`) padded at the end of axis 1 with `value` (token id
    0: padding, masked) so that `length + extra_tokens` is a multiple of `num_devices`
    (`extra_tokens=1` for a backbone with a class token). Unchanged when it is already.

    Examples:
        >>> pad_tokens(np.array([[5, 6, 7]]), 4).tolist()
        [[5, 6, 7, 0]]
        >>> pad_tokens(np.array([[5, 6, 7]]), 2, extra_tokens=1).tolist()
        [[5, 6, 7]]
    """
    from spectralmix import validation

    num_devices = validation.integer("num_devices", num_devices, 1)
    x = np.asarray(x)
    missing = -(x.shape[1] + extra_tokens) % num_devices
    if not missing:
        return x
    widths = [(0, 0)] * x.ndim
    widths[1] = (0, missing)
    return np.pad(x, widths, constant_values=value)


# --- checks ----------------------------------------------------------------------------------


def _divides(layer, num_devices, what, value):
    if value % num_devices:
        raise ValueError(
            f"{type(layer).__name__}: sequence parallelism over {num_devices} devices needs "
            f"the device count to divide {what} ({value}). "
            f"Received: num_devices={num_devices}, {what}={value}"
        )


def _check_shapes(layer, inputs, num_devices, *, local):
    """The mixer's sharded sizes divisible by the device count; the length too (JAX)."""
    channels = inputs.shape[-1]
    _divides(layer, num_devices, "channels", channels)
    if hasattr(layer, "num_heads") and _forward_of(layer) is _fftnet:
        _divides(layer, num_devices, "num_heads", layer.num_heads)
    if not local and inputs.shape[1] is not None and inputs.shape[1] % num_devices:
        raise ValueError(
            f"{type(layer).__name__}: {inputs.shape[1]} tokens do not split over "
            f"{num_devices} devices; pad the inputs to a multiple of the device count "
            "(spectralmix.sequence_parallel.pad_tokens). "
            f"Received: sequence_length={inputs.shape[1]}, num_devices={num_devices}"
        )


def check_model(model: keras.layers.Layer, num_devices: int) -> None:
    """Raises a one-line `ValueError` if a mixer of `model` cannot run sequence-parallel over
    `num_devices` devices (attention, a mixer without a sharded form, a device count that does
    not divide the heads or the channels)."""
    from spectralmix.layers import SelfAttention
    from spectralmix.registry import get_token_mixer, token_mixer_names

    mixers = tuple(get_token_mixer(name) for name in token_mixer_names())
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if isinstance(layer, SelfAttention):
            _forward_of(layer)
        elif isinstance(layer, mixers) and layer.built:
            _forward_of(layer)
            channels = _channels(layer)
            if channels is not None:
                _divides(layer, num_devices, "channels", channels)
            if _forward_of(layer) is _fftnet:
                _divides(layer, num_devices, "num_heads", layer.num_heads)


def _channels(layer):
    for weight in layer.weights:
        if weight.path.endswith(("base_filter", "filter_real", "filter_2d_real")):
            return None if "base_filter" in weight.path else int(weight.shape[-1])
    return getattr(layer, "channels", None)


# --- the sharded forwards ------------------------------------------------------------------


def _shard(x, axis, communicator):
    """Block `index` of `size` equal blocks of `x` along `axis`."""
    x = ops.convert_to_tensor(x)
    width = x.shape[axis] // communicator.size
    start = [0] * len(x.shape)
    start[axis] = communicator.index * width
    shape = list(x.shape)
    shape[axis] = width
    if all(isinstance(s, int) for s in shape):
        return ops.slice(x, start, shape)
    return ops.slice(x, start, [ops.shape(x)[i] if s is None else s for i, s in enumerate(shape)])


def _gather_mask(mask, communicator):
    """The whole `(B, N)` padding mask on every shard, as float `(B, N, 1)` (through the
    all-to-all: each shard's mask copied to every channel block)."""
    m = ops.expand_dims(ops.cast(mask, "float32"), -1)
    return communicator.tokens_to_channels(ops.tile(m, (1, 1, communicator.size)))


def _masked(x, mask):
    """`x` with padded tokens zeroed, and the `(B, n, 1)` token weights (or `None`)."""
    if mask is None:
        return x, None
    token_weight = ops.expand_dims(ops.cast(mask, x.dtype), -1)
    return x * token_weight, token_weight


def _fftnet(layer, inputs, mask, communicator):
    from spectralmix import ops as spectral_ops
    from spectralmix.backends import spectral_core
    from spectralmix.layers import _checks

    _checks.floating_input(type(layer).__name__, inputs)
    x = ops.cast(inputs, _checks.island_dtype(layer.dtype_policy))
    length = x.shape[1] * communicator.size
    x, token_weight = _masked(x, mask)
    if layer.adaptive:
        # The context, a mean over every real token: local sums and counts, added up.
        total = communicator.sum(ops.sum(x, axis=1))
        if token_weight is None:
            context = total / float(length)
        else:
            count = communicator.sum(ops.sum(token_weight, axis=1))
            context = total / ops.maximum(count, 1.0)
        # `_filter` takes the mean of its input's tokens: one token, the context itself.
        scale, shift = layer._filter(ops.expand_dims(context, 1), None)
    else:
        scale, shift = layer._filter(x, None)
    # The length the filter is defined at (`filter_length`; `max_sequence_length` before it).
    filter_length = getattr(layer, "filter_length", layer.max_sequence_length)
    scale = spectral_ops.resample_spectrum(scale, length, filter_length)
    shift = spectral_ops.resample_spectrum(shift, length, filter_length)
    y = spectral_core(layer.fft_impl, length).spectral_filter(
        communicator.tokens_to_channels(x),
        _shard(scale, 1, communicator),
        _shard(shift, 1, communicator),
        num_heads=layer.num_heads // communicator.size,
        activation="modrelu" if layer.variant == "v1" else "gelu",
        epsilon=layer.modrelu_epsilon,
    )
    y = communicator.channels_to_tokens(y)
    if token_weight is not None:
        y = y * token_weight
    return ops.cast(y, layer.compute_dtype)


def _fnet(layer, inputs, mask, communicator):
    from spectralmix.layers import _checks

    _checks.floating_input(type(layer).__name__, inputs)
    x = ops.cast(inputs, _checks.island_dtype(layer.dtype_policy))
    x, token_weight = _masked(x, mask)
    re, im = ops.fft((x, ops.zeros_like(x)))  # along the channels: token-local
    re = ops.transpose(communicator.tokens_to_channels(re), (0, 2, 1))
    im = ops.transpose(communicator.tokens_to_channels(im), (0, 2, 1))
    real, _ = ops.fft((re, im))  # along the whole length, on a block of channels
    y = communicator.channels_to_tokens(ops.transpose(real, (0, 2, 1)))
    if token_weight is not None:
        y = y * token_weight
    return ops.cast(y, layer.compute_dtype)


def _gfnet(layer, inputs, mask, communicator):
    from spectralmix.backends import spectral_core
    from spectralmix.layers import _checks
    from spectralmix.layers.global_filter import _dft_filter, _fft_filter

    _checks.floating_input(type(layer).__name__, inputs)
    x = ops.cast(inputs, _checks.island_dtype(layer.dtype_policy))
    length = x.shape[1] * communicator.size
    x, token_weight = _masked(x, mask)
    filter_re, filter_im = (_shard(f, 0, communicator) for f in layer._filter(length))
    xc = communicator.tokens_to_channels(x)
    if spectral_core(layer.fft_impl, length).name == "dft":
        y = _dft_filter(xc, ops.transpose(filter_re), ops.transpose(filter_im), length)
    else:
        y = _fft_filter(xc, filter_re, filter_im, length)
    y = communicator.channels_to_tokens(y)
    if token_weight is not None:
        y = y * token_weight
    return ops.cast(y, layer.compute_dtype)


def _gfnet_2d(layer, inputs, mask, communicator):
    from spectralmix import ops as spectral_ops
    from spectralmix.backends import spectral_core
    from spectralmix.layers import _checks
    from spectralmix.layers.global_filter_2d import _dft_filter_2d, _fft_filter_2d

    _checks.floating_input(type(layer).__name__, inputs)
    x = ops.cast(inputs, _checks.island_dtype(layer.dtype_policy))
    tokens = x.shape[1] * communicator.size
    x, token_weight = _masked(x, mask)
    xc = communicator.tokens_to_channels(x)  # every token, a block of channels
    channels = xc.shape[-1]
    first = int(layer.class_token)
    height, width = layer._grid(tokens - first)
    filter_re, filter_im = (_shard(f, 0, communicator) for f in layer._filter(height, width))
    patches = ops.reshape(xc[:, first:], (-1, height, width, channels))
    if spectral_core(layer.fft_impl, tokens - first).name == "dft":
        y = _dft_filter_2d(patches, filter_re, filter_im, height, width)
    else:
        y = _fft_filter_2d(patches, filter_re, filter_im, height, width)
    y = ops.reshape(y, (-1, tokens - first, channels))
    if first:
        patch_mask = None
        if mask is not None:
            patch_mask = _gather_mask(mask, communicator)[:, first:, 0] > 0.5
        pooled = spectral_ops.masked_mean_tokens(xc[:, first:], patch_mask)
        y = ops.concatenate([ops.expand_dims(pooled, 1), y], axis=1)
    y = communicator.channels_to_tokens(y)
    if token_weight is not None:
        y = y * token_weight
    return ops.cast(y, layer.compute_dtype)


def _hyena(layer, inputs, mask, communicator):
    from spectralmix.layers import _checks

    _checks.floating_input(type(layer).__name__, inputs)
    island = _checks.island_dtype(layer.dtype_policy)
    length = inputs.shape[1] * communicator.size
    p, token_weight = _masked(ops.cast(layer.in_projection(inputs), island), mask)
    # The projection's columns are channel-major: a block of them is a block of channels,
    # each with its o + 1 streams.
    p = communicator.tokens_to_channels(p)
    every_weight = None if mask is None else ops.cast(_gather_mask(mask, communicator), island)
    padded = ops.pad(p, [[0, 0], [layer.short_filter_order - 1, 0], [0, 0]])
    q = layer._short_conv(
        padded,
        length,
        kernel=_shard(layer.short_conv_kernel, 1, communicator),
        bias=_shard(layer.short_conv_bias, 0, communicator),
    )
    forward, reverse = layer._filters(length)
    forward = _shard(forward, 1, communicator)
    reverse = None if reverse is None else _shard(reverse, 1, communicator)
    skip = _shard(layer.skip, 0, communicator)
    z = layer._recurrence(q, forward, reverse, skip, every_weight, length)
    y = communicator.channels_to_tokens(z)
    y = layer.out_projection(ops.cast(y, layer.compute_dtype))
    if token_weight is not None:
        y = y * ops.cast(token_weight, y.dtype)
    return y


def _forward_of(layer):
    """The sharded forward of `layer`'s class; a one-line error for a mixer without one."""
    from spectralmix.layers import (
        AdaptiveSpectralFilter,
        FourierMixing,
        GlobalFilter,
        GlobalFilter2D,
        HyenaOperator,
    )

    forwards = (
        (AdaptiveSpectralFilter, _fftnet),
        (FourierMixing, _fnet),
        (GlobalFilter2D, _gfnet_2d),
        (GlobalFilter, _gfnet),
        (HyenaOperator, _hyena),
    )
    for cls, forward in forwards:
        if isinstance(layer, cls):
            return forward
    raise ValueError(
        f"{type(layer).__name__} has no sequence-parallel form: its tokens cannot be sharded "
        "(attention is not sharded over the sequence here); use an FFT mixer ('fftnet', "
        f"'fnet', 'gfnet', 'gfnet_2d', 'hyena') or mode='data'. Received: {layer.name!r}"
    )
