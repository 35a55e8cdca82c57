"""The implicit long filter of Hyena: a small sine network of the token position."""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from spectralmix import validation
from spectralmix.layers import _checks

#: The frequencies of the positional features start just above 0, as in the authors' code.
_LOWEST_BAND = 1e-4


def pytorch_default_kernel_initializer() -> keras.initializers.Initializer:
    """`U(±1/√fan_in)`: PyTorch's `nn.Linear`/`nn.Conv1d` default, which the Hyena authors'
    layers use (`kaiming_uniform_(a=√5)`)."""
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform"
    )


def pytorch_default_bias_initializer(fan_in: int) -> keras.initializers.Initializer:
    """`U(±1/√fan_in)`: PyTorch's default bias of a layer with `fan_in` inputs."""
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


@keras.saving.register_keras_serializable(package="spectralmix")
class HyenaFilter(keras.layers.Layer):
    """Hyena's implicit long filter: `h(t) = window(t) · FFN(features(t))`, one value per channel.

    The filter of a long convolution is not a table of `N` weights but a function of the token
    position `n`, so its parameter count does not depend on the length (Poli et al. 2023,
    section 3.3; the authors' `HyenaFilter`):

    1. positional features (`E = emb_dim` of them, `B = (E - 1) // 2` bands), with
       `N_max = max_sequence_length`:
       `t = n / (N_max - 1)` (so `t` runs from 0 to 1 over `N_max` tokens),
       `ω = 2π n / N_max`, band frequencies `f = linspace(1e-4, B - 1, B)`,
       `z = [t, cos(f·ω), -sin(f·ω)]` (the real and imaginary parts of `exp(-i f ω)`);
    2. the FFN: `Dense(E → F) → Sin → [Dense(F → F) → Sin] × num_inner_mlps →
       Dense(F → channels, no bias)`, `F = filter_order`, where `Sin(a) = sin(w · a)` with one
       learnable frequency `w` per unit (`sine_frequency` at start), shared by every `Sin`;
    3. the window (`modulate=True`): `h = FFN(z) · (exp(-t · |δ_c|) + shift)`, a decay rate
       `δ_c` per channel, fixed, spread linearly from `log(target) / slow_decay_pct` to
       `log(target) / fast_decay_pct` over the channels (at `t = fast_decay_pct` the fastest
       channel has decayed to `target`);
    4. `normalized=True`: `h / sum_c |h_c|` at each position (over the channels, as the
       authors' code).

    It is a function of `n`, so it can be evaluated at any positions: `n < N_max` is the
    authors' table for `N_max` tokens, `n ≥ N_max` continues the same formulas (`t > 1`).

    Args:
        channels: number of filters (output channels).
        max_sequence_length: `N_max`, the length that sets the time scale of `t` and `ω`.
        filter_order: width `F` of the FFN.
        emb_dim: number `E` of positional features; odd and at least 3 (`t` and one band).
        num_inner_mlps: number of `Dense(F → F) → Sin` layers after the first.
        sine_frequency: initial frequency `w` of the sine activations.
        modulate: whether to multiply the filter by the decaying window.
        fast_decay_pct: `t` at which the fastest channel's window reaches `target`.
        slow_decay_pct: `t` at which the slowest channel's window reaches `target`.
        target: the window's value at those times, in (0, 1).
        shift: a constant added to the window.
        normalized: whether to divide the filter by its L1 norm over the channels.
        kernel_initializer: initializer of the FFN kernels. Default (`None`): PyTorch's,
            `U(±1/√fan_in)`, as the authors' code.
        bias_initializer: initializer of the FFN biases. Default (`None`): PyTorch's,
            `U(±1/√fan_in)` of each layer.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Input shape:
        `(length,)`: the token positions `n` (integers, or floats holding integers).

    Output shape:
        `(length, channels)`: the filter at those positions.

    Call arguments:
        positions: the positions at which to evaluate the filter.

    Examples:
        >>> import numpy as np
        >>> hyena_filter = HyenaFilter(channels=4, max_sequence_length=32, filter_order=8)
        >>> tuple(hyena_filter(np.arange(32)).shape)
        (32, 4)
        >>> hyena_filter.count_params()  # independent of the length
        216

    Reference:
        Poli et al., "Hyena Hierarchy: Towards Larger Convolutional Language Models",
        ICML 2023, arXiv:2302.10866.
    """

    def __init__(
        self,
        channels,
        max_sequence_length,
        filter_order=64,
        emb_dim=3,
        num_inner_mlps=2,
        sine_frequency=1.0,
        modulate=True,
        fast_decay_pct=0.3,
        slow_decay_pct=1.5,
        target=1e-2,
        shift=0.0,
        normalized=False,
        kernel_initializer=None,
        bias_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.channels = _checks.positive_int("channels", channels)
        self.max_sequence_length = _checks.positive_int("max_sequence_length", max_sequence_length)
        set_filter_options(
            self,
            filter_order=filter_order,
            emb_dim=emb_dim,
            num_inner_mlps=num_inner_mlps,
            sine_frequency=sine_frequency,
            modulate=modulate,
            fast_decay_pct=fast_decay_pct,
            slow_decay_pct=slow_decay_pct,
            target=target,
            shift=shift,
            normalized=normalized,
        )
        self.kernel_initializer = _optional_initializer(kernel_initializer)
        self.bias_initializer = _optional_initializer(bias_initializer)

    def build(self, input_shape=None):
        self.frequency = self.add_weight(
            name="sine_frequency",
            shape=(self.filter_order,),
            initializer=keras.initializers.Constant(self.sine_frequency),
        )
        self.dense_layers = []
        units_in = self.emb_dim
        for i in range(1 + self.num_inner_mlps):
            dense = keras.layers.Dense(
                self.filter_order,
                kernel_initializer=self.kernel_initializer or pytorch_default_kernel_initializer(),
                bias_initializer=self.bias_initializer
                or pytorch_default_bias_initializer(units_in),
                dtype=self.dtype_policy,
                name=f"dense_{i}",
            )
            dense.build((None, units_in))
            self.dense_layers.append(dense)
            units_in = self.filter_order
        self.output_dense = keras.layers.Dense(
            self.channels,
            use_bias=False,
            kernel_initializer=self.kernel_initializer or pytorch_default_kernel_initializer(),
            dtype=self.dtype_policy,
            name="output_dense",
        )
        self.output_dense.build((None, self.filter_order))

    def decay_rates(self) -> np.ndarray:
        """`|δ_c|` of the window, one per channel (constants of the arguments)."""
        fast = math.log(self.target) / self.fast_decay_pct
        slow = math.log(self.target) / self.slow_decay_pct
        return np.abs(np.linspace(slow, fast, self.channels))

    def features(self, positions):
        """`(t, z)`: the normalised time `(length, 1)` and the features `(length, emb_dim)`."""
        n = ops.cast(positions, self.compute_dtype)[:, None]
        t = n / float(max(self.max_sequence_length - 1, 1))
        bands = (self.emb_dim - 1) // 2
        frequencies = np.linspace(_LOWEST_BAND, bands - 1, bands)
        angle = (
            (2.0 * math.pi / self.max_sequence_length)
            * n
            * ops.convert_to_tensor(frequencies[None, :], self.compute_dtype)
        )
        return t, ops.concatenate([t, ops.cos(angle), -ops.sin(angle)], axis=-1)

    def call(self, positions):
        t, h = self.features(positions)
        frequency = ops.cast(self.frequency, self.compute_dtype)
        for dense in self.dense_layers:
            h = ops.sin(frequency * dense(h))
        h = self.output_dense(h)
        if self.modulate:
            rates = ops.convert_to_tensor(self.decay_rates()[None, :], self.compute_dtype)
            h = h * (ops.exp(-t * rates) + self.shift)
        if self.normalized:
            h = h / ops.sum(ops.abs(h), axis=-1, keepdims=True)
        return h

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.channels)

    def get_config(self):
        return {
            **super().get_config(),
            "channels": self.channels,
            "max_sequence_length": self.max_sequence_length,
            **filter_options(self),
            "kernel_initializer": _serialize_optional(self.kernel_initializer),
            "bias_initializer": _serialize_optional(self.bias_initializer),
        }


#: The implicit filter's own arguments: `HyenaOperator` takes them too and passes them on.
FILTER_OPTIONS = (
    "filter_order",
    "emb_dim",
    "num_inner_mlps",
    "sine_frequency",
    "modulate",
    "fast_decay_pct",
    "slow_decay_pct",
    "target",
    "shift",
    "normalized",
)


def set_filter_options(
    layer,
    *,
    filter_order,
    emb_dim,
    num_inner_mlps,
    sine_frequency,
    modulate,
    fast_decay_pct,
    slow_decay_pct,
    target,
    shift,
    normalized,
):
    """Checks the `FILTER_OPTIONS` (a bad one is a `ValueError` naming it and its value) and
    sets them as attributes of `layer`."""
    checked = {
        "filter_order": _checks.positive_int("filter_order", filter_order),
        "emb_dim": check_emb_dim(emb_dim),
        "num_inner_mlps": validation.integer("num_inner_mlps", num_inner_mlps, minimum=0),
        "sine_frequency": _checks.positive_float("sine_frequency", sine_frequency),
        "modulate": _checks.boolean("modulate", modulate),
        "fast_decay_pct": _checks.positive_float("fast_decay_pct", fast_decay_pct),
        "slow_decay_pct": _checks.positive_float("slow_decay_pct", slow_decay_pct),
        "target": check_target(target),
        "shift": check_shift(shift),
        "normalized": _checks.boolean("normalized", normalized),
    }
    for name, value in checked.items():
        setattr(layer, name, value)


def filter_options(layer) -> dict:
    """`layer`'s `FILTER_OPTIONS` as keyword arguments (for a config or a `HyenaFilter`)."""
    return {name: getattr(layer, name) for name in FILTER_OPTIONS}


def check_emb_dim(value):
    """`emb_dim`: an odd integer `>= 3` (time and at least one band of cos and sin)."""
    value = _checks.positive_int("emb_dim", value)
    if value < 3 or value % 2 == 0:
        raise ValueError(
            "`emb_dim` must be odd and at least 3 (the time, then a cosine and a sine per "
            f"band). Received: emb_dim={value!r}"
        )
    return value


def check_target(value):
    """`target`: the window's value at the decay times, strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"`target` must be a number in (0, 1). Received: target={value!r}")
    return float(value)


def check_shift(value):
    """`shift`: any finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"`shift` must be a finite number. Received: shift={value!r}")
    return float(value)


def _optional_initializer(value):
    return None if value is None else keras.initializers.get(value)


def _serialize_optional(initializer):
    return None if initializer is None else keras.initializers.serialize(initializer)
