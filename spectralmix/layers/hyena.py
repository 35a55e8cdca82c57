"""The Hyena operator: gated long convolutions with implicit filters, in O(N log N)."""

from __future__ import annotations

import math
from types import MappingProxyType

import keras
from keras import ops

from spectralmix import sequence_parallel, validation
from spectralmix.backends import dft, spectral_core
from spectralmix.layers import _checks
from spectralmix.layers.hyena_filter import (
    HyenaFilter,
    filter_options,
    pytorch_default_bias_initializer,
    pytorch_default_kernel_initializer,
    set_filter_options,
)

#: FLOPs of one `Sin` activation per element: the frequency multiply (1) and the sine, counted
#: as the other transcendental activations (`spectralmix.flops.TANH_PER_ELEMENT`, 5).
SINE_PER_ELEMENT = 6
#: The window per filter value: `t·|δ|` (1), `exp` (5, as tanh), `+ shift` (1), the multiply (1).
WINDOW_PER_ELEMENT = 8
#: `normalized=True` per filter value: `|h|` (1), its sum over the channels (1), the divide (1).
NORMALIZE_PER_ELEMENT = 3
#: The skip term `D·u` added to a long convolution: a multiply and an add per element.
SKIP_PER_ELEMENT = 2


@keras.saving.register_keras_serializable(package="spectralmix")
class HyenaOperator(keras.layers.Layer):
    """Hyena: data-controlled gating interleaved with long convolutions by implicit filters.

    For `x` of shape `(B, N, D)` and `order` `o` (Poli et al. 2023; the authors'
    `HyenaOperator`, whose order-`o` form has `o - 1` long convolutions):

    1. projections: `p = Dense(D → (o + 1)·D)(x)`; column `c·(o + 1) + j` is stream `j` of
       channel `c`;
    2. a short causal depthwise convolution of `k = short_filter_order` taps over each of the
       `(o + 1)·D` columns: `q_t = b + sum_j W[j] · p_{t - k + 1 + j}` (zeros before the start);
       the streams are the gates `x_0 … x_{o-1}` (`j = 0 … o - 1`) and the value `v` (`j = o`);
    3. `o - 1` long convolutions, each gated before and the last gated after:
       `z = v`; for `i = 1 … o - 1`: `u = x_{o-i} ⊙ z`, `z = (h_i * u) + d_i ⊙ u`;
       then `y = x_0 ⊙ z` (order 2: `y = x_0 ⊙ (h * (x_1 ⊙ v) + d ⊙ (x_1 ⊙ v))`);
    4. `output = Dense(D → D)(y)`.

    `h_i` are implicit filters (`HyenaFilter`: a sine network of the position with a decaying
    window, `(o - 1)·D` channels, channel `c·(o - 1) + i - 1` the filter of channel `c` in
    convolution `i`) and `d_i` a learned skip weight per channel. The causal long convolution
    `(h * u)_t = sum_{s ≤ t} h_{t-s} · u_s` is computed by FFT with zero padding to `2N`
    (linear, not circular): `irfft(rfft(u, 2N) · rfft(h, 2N))[:N]`, in O(N log N).

    `causal=False` is the bidirectional form of M2-BERT (Fu et al. 2023): a second implicit
    filter `g_i` (`reverse_filter`) reaches the later tokens,
    `(h * u)_t = sum_{s ≤ t} h_{t-s} · u_s + sum_{s > t} g_{s-t-1} · u_s`, as one FFT
    convolution with the kernel `[h_0 … h_{N-1}, g_{N-1} … g_0]` of length `2N`.
    `fft_impl="dft"` computes the same convolutions as products with the real-DFT matrices of
    `2N` points instead (no FFT op: for ONNX and LiteRT export, `O(N² D)`).

    Any length: the filter is evaluated at the positions `0 … N - 1` of the input, with the
    time scale of `max_sequence_length` (the authors' table for `max_sequence_length` tokens,
    cut to `N`); beyond `max_sequence_length` the same formulas continue, so a causal output
    never depends on the input's length (it is prefix-consistent).

    Masks: the projections are zeroed at padded tokens before the short convolution and the
    inputs of every long convolution are zeroed there too, so padded content never reaches a
    real output; padded outputs are zero.

    Mixed precision: the projections follow the layer's policy; the short convolution, the
    filters, the gating and the FFT convolutions run in float32 (the "spectral island") and
    the result is cast back to the compute dtype before the output projection.

    Generation: a causal layer has `init_cache(batch_size, max_length)` and
    `call_with_cache(inputs, cache, cache_index)`, which compute the outputs at new positions
    from the earlier ones kept in a cache (the FFT for a prompt, `O(max_length · D)` per new
    token, the filter evaluated once into the cache); their outputs equal `layer(full_inputs)`
    at those positions.

    Args:
        max_sequence_length: the length that sets the implicit filters' time scale. Defaults
            to the sequence length of the first input the layer is built on.
        order: the order `o >= 2` of the recurrence: `o + 1` streams, `o - 1` long
            convolutions.
        causal: `True` (default): no output depends on a later token. `False`: the
            bidirectional form with a second implicit filter for the later tokens.
        filter_order: width of the implicit filters' FFN.
        emb_dim: number of positional features of the filters (odd, `>= 3`).
        num_inner_mlps: number of hidden `Dense → Sin` layers of the filters' FFN after the
            first.
        short_filter_order: number of taps of the short convolution.
        sine_frequency: initial frequency of the filters' sine activations (the authors' `w`).
        modulate: whether the filters are multiplied by a decaying exponential window.
        fast_decay_pct: the window's fastest decay: `target` reached at `t` = this (`t` is the
            position over `max_sequence_length - 1`).
        slow_decay_pct: the window's slowest decay, likewise.
        target: the window's value at those times, in (0, 1).
        shift: a constant added to the window.
        normalized: whether each filter position is divided by its L1 norm over the channels.
        kernel_initializer: initializer of the input and output projection kernels.
        bias_initializer: initializer of the input and output projection biases.
        fft_impl: how the long convolutions' transforms of `2N` points are computed: `"fft"`
            (the framework's FFT, default), `"dft"` (matmuls against the cos/sin matrices of
            `2N` points: the same function, no FFT op, for export) or `"auto"` (the DFT when
            `2N` is at most the length measured faster on this backend's CPU); see
            `AdaptiveSpectralFilter`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    The short convolution and the filters' FFN start as in the authors' code (PyTorch's
    default `U(±1/√fan_in)`), the skip weights `d` from a standard normal.

    Input shape:
        `(batch, sequence_length, channels)`, floating point.

    Output shape:
        Same as the input.

    Call arguments:
        inputs: the token features.
        mask: optional boolean `(batch, sequence_length)` padding mask.
        training: unused (Hyena has no dropout); accepted as every token mixer's.

    Examples:
        >>> import numpy as np
        >>> layer = HyenaOperator(max_sequence_length=64, filter_order=16)
        >>> x = np.random.default_rng(0).normal(size=(2, 64, 8)).astype("float32")
        >>> tuple(layer(x).shape), tuple(layer(x[:, :20]).shape)
        ((2, 64, 8), (2, 20, 8))
        >>> y = keras.ops.convert_to_numpy(layer(x))
        >>> later = x.copy()
        >>> later[:, 30:] = 0.0  # change tokens after position 29
        >>> bool(np.abs(keras.ops.convert_to_numpy(layer(later))[:, :30] - y[:, :30]).max() < 1e-5)
        True

    Reference:
        Poli et al., "Hyena Hierarchy: Towards Larger Convolutional Language Models",
        ICML 2023, arXiv:2302.10866. Bidirectional form: Fu et al., "Monarch Mixer: A Simple
        Sub-Quadratic GEMM-Based Architecture", NeurIPS 2023, arXiv:2310.12109.
    """

    #: The default form is causal; each layer's own `causal` (its argument) says which it is.
    causal = True
    model_arguments = ("max_sequence_length", "kernel_initializer", "bias_initializer")
    # Megatron-style: every per-channel weight split by channel (the projection's columns are
    # channel-major, so a contiguous split keeps each channel's streams together), the output
    # projection by input; the filters' FFN bodies are small and replicated.
    model_parallel_layout = MappingProxyType(
        {
            "in_projection/kernel": (None, "model"),
            "in_projection/bias": ("model",),
            "short_conv_kernel": (None, "model"),
            "short_conv_bias": ("model",),
            "skip": ("model",),
            "(?:implicit|reverse)_filter/output_dense/kernel": (None, "model"),
            "out_projection/kernel": ("model", None),
        }
    )

    def __init__(
        self,
        max_sequence_length=None,
        order=2,
        causal=True,
        filter_order=64,
        emb_dim=3,
        num_inner_mlps=2,
        short_filter_order=3,
        sine_frequency=1.0,
        modulate=True,
        fast_decay_pct=0.3,
        slow_decay_pct=1.5,
        target=1e-2,
        shift=0.0,
        normalized=False,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        fft_impl="fft",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.max_sequence_length = _checks.optional_positive_int(
            "max_sequence_length", max_sequence_length
        )
        self.order = validation.integer("order", order, minimum=2)
        self.causal = _checks.boolean("causal", causal)
        self.short_filter_order = _checks.positive_int("short_filter_order", short_filter_order)
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
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.fft_impl = _checks.choice("fft_impl", fft_impl, _checks.FFT_IMPLS)
        self.supports_masking = True

    # --- weights ------------------------------------------------------------------------

    def _filter_layer(self, name):
        return HyenaFilter(
            channels=self.channels * (self.order - 1),
            max_sequence_length=self.max_sequence_length,
            **filter_options(self),
            dtype=_checks.island_dtype(self.dtype_policy),
            name=name,
        )

    def build(self, input_shape):
        shape = _checks.sequence_shape("HyenaOperator", input_shape)
        if self.max_sequence_length is None:
            if shape[1] is None:
                raise ValueError(
                    "HyenaOperator needs `max_sequence_length` when the sequence length is not "
                    f"known at build time. Received: input_shape={shape}"
                )
            self.max_sequence_length = int(shape[1])
        self.channels = channels = int(shape[-1])
        streams = (self.order + 1) * channels
        island = _checks.island_dtype(self.dtype_policy)
        self.in_projection = keras.layers.Dense(
            streams,
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
            name="in_projection",
        )
        self.in_projection.build((None, channels))
        # autocast=False: a mixed-precision call must see the island's weights in float32.
        self.short_conv_kernel = self.add_weight(
            name="short_conv_kernel",
            shape=(self.short_filter_order, streams),
            initializer=pytorch_default_kernel_initializer(),
            dtype=island,
            autocast=False,
        )
        self.short_conv_bias = self.add_weight(
            name="short_conv_bias",
            shape=(streams,),
            initializer=pytorch_default_bias_initializer(self.short_filter_order),
            dtype=island,
            autocast=False,
        )
        self.skip = self.add_weight(
            name="skip",
            shape=(channels * (self.order - 1),),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            dtype=island,
            autocast=False,
        )
        self.implicit_filter = self._filter_layer("implicit_filter")
        self.implicit_filter.build((None,))
        if not self.causal:
            self.reverse_filter = self._filter_layer("reverse_filter")
            self.reverse_filter.build((None,))
        self.out_projection = keras.layers.Dense(
            channels,
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
            name="out_projection",
        )
        self.out_projection.build((None, channels))

    # --- the pieces -----------------------------------------------------------------------

    def _stream(self, q, j):
        """Stream `j` `(B, T, D)` of the short convolution's output `q` `(B, T, (o+1)·D)`."""
        return q[..., j :: self.order + 1]

    def _per_convolution(self, values, i):
        """Convolution `i`'s channels `(…, D)` of a filter-layout tensor `(…, (o-1)·D)`."""
        return values[..., i :: self.order - 1]

    def _short_conv(self, padded, length, kernel=None, bias=None):
        """The short convolution's outputs at the last `length` rows of `padded`, which holds
        `short_filter_order - 1` earlier rows before them; `kernel` and `bias` default to the
        layer's (a block of their channels under sequence parallelism)."""
        kernel = self.short_conv_kernel if kernel is None else kernel
        out = self.short_conv_bias if bias is None else bias
        for j in range(self.short_filter_order):
            out = out + kernel[j] * padded[:, j : j + length]
        return out

    def _recurrence(self, q, forward, reverse, skip, token_weight, length):
        """The order-`o` gating and long convolutions on the short convolution's output `q`,
        before the output projection: `(B, L, D)`. `token_weight` (or None) zeroes padded
        tokens before each convolution."""
        z = self._stream(q, self.order)
        for i in range(self.order - 1):
            u = self._stream(q, self.order - 1 - i) * z
            if token_weight is not None:
                u = u * token_weight
            g = None if reverse is None else self._per_convolution(reverse, i)
            z = self._long_conv(u, self._per_convolution(forward, i), g, length)
            z = z + self._per_convolution(skip, i) * u
        return self._stream(q, 0) * z

    def _filters(self, length):
        """`(forward, reverse or None)` filters at positions `0 … length - 1`, `(L, (o-1)·D)`."""
        positions = ops.arange(length, dtype="int32")
        forward = self.implicit_filter(positions)
        reverse = None if self.causal else self.reverse_filter(positions)
        return forward, reverse

    def _long_conv(self, u, h, g, length):
        """`_fft_conv` or `_dft_conv`, as `fft_impl` picks for a transform of `2·length`."""
        if spectral_core(self.fft_impl, 2 * length).name == "dft":
            return self._dft_conv(u, h, g, length)
        return self._fft_conv(u, h, g, length)

    @staticmethod
    def _dft_conv(u, h, g, length):
        """`_fft_conv` as matmuls against the orthonormal real-DFT matrices of `2·length`
        points (`spectralmix.backends.dft`): `u`'s zero half drops out of its transform, and
        only the first `length` outputs are computed."""
        dtype = u.dtype
        forward, inverse = dft.rdft_matrices(2 * length, dtype)  # (2K, 2L), (2L, 2K); K = L + 1
        bins = length + 1
        tail = ops.zeros_like(h) if g is None else ops.flip(g, axis=0)
        kernel = ops.concatenate([h, tail], axis=0)  # (2L, D)
        # The batched operand first: TFLite's converter turns `einsum(matrix, batched)` with a
        # dynamic batch into a reshape of static shape (-1, ...), which LiteRT cannot load.
        spectrum = ops.einsum("bnd,kn->bkd", u, forward[:, :length])
        kernel_spectrum = ops.einsum("nd,kn->kd", kernel, forward)
        u_re, u_im = spectrum[:, :bins], spectrum[:, bins:]
        h_re, h_im = kernel_spectrum[:bins], kernel_spectrum[bins:]
        product = ops.concatenate([u_re * h_re - u_im * h_im, u_re * h_im + u_im * h_re], axis=1)
        # Orthonormal transforms: the product of two spectra is the convolution's over √(2L).
        if isinstance(length, int):
            scale = math.sqrt(2 * length)
        else:
            scale = ops.sqrt(ops.cast(2 * length, dtype))
        return ops.einsum("bkd,nk->bnd", product, inverse[:length]) * scale

    @staticmethod
    def _fft_conv(u, h, g, length):
        """`sum_{s ≤ t} h_{t-s} u_s (+ sum_{s > t} g_{s-t-1} u_s)` for `t < length`, by FFT
        of length `2·length`: `u` `(B, L, D)`, `h` and `g` `(L, D)`."""
        u = ops.transpose(u, (0, 2, 1))
        u = ops.concatenate([u, ops.zeros_like(u)], axis=-1)
        h = ops.transpose(h, (1, 0))
        tail = ops.zeros_like(h) if g is None else ops.flip(ops.transpose(g, (1, 0)), axis=-1)
        kernel = ops.concatenate([h, tail], axis=-1)
        u_re, u_im = ops.rfft(u)
        h_re, h_im = ops.rfft(kernel)
        y = ops.irfft((u_re * h_re - u_im * h_im, u_re * h_im + u_im * h_re))
        return ops.transpose(y[:, :, :length], (0, 2, 1))

    # --- the layer --------------------------------------------------------------------------

    def call(self, inputs, mask=None, training=None):
        if sequence_parallel.is_active():  # tokens sharded over devices
            return sequence_parallel.sharded_call(self, inputs, mask)
        _checks.floating_input("HyenaOperator", inputs)
        island = _checks.island_dtype(self.dtype_policy)
        length = inputs.shape[1] if inputs.shape[1] is not None else ops.shape(inputs)[1]
        p = ops.cast(self.in_projection(inputs), island)
        token_weight = None
        if mask is not None:
            token_weight = ops.expand_dims(ops.cast(mask, island), -1)
            p = p * token_weight
        padded = ops.pad(p, [[0, 0], [self.short_filter_order - 1, 0], [0, 0]])
        q = self._short_conv(padded, length)
        forward, reverse = self._filters(length)
        z = self._recurrence(q, forward, reverse, self.skip, token_weight, length)
        y = self.out_projection(ops.cast(z, self.compute_dtype))
        if token_weight is not None:
            y = y * ops.cast(token_weight, y.dtype)
        return y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    # --- generation -----------------------------------------------------------------------

    def init_cache(self, batch_size, max_length):
        """The cache for generating up to `max_length` tokens: a tuple of `order + 1` tensors,
        `(window, filters, inputs_1, …, inputs_{o-1})`:

        - `window` `(batch_size, short_filter_order - 1, (order + 1)·D)`, compute dtype, zeros:
          the projections of the `short_filter_order - 1` tokens before the next position;
        - `filters` `(max_length, (order - 1)·D)`, float32: the implicit filters at positions
          `0 … max_length - 1` (a function of the weights alone, evaluated here once so that a
          step does not run the filter network; every call with `T > 1` evaluates it again);
        - `inputs_i` `(batch_size, max_length, D)`, float32 (the spectral island), zeros: the
          inputs `u` of long convolution `i` at every position so far.

        Static shapes, so a compiled step never retraces.
        """
        self._check_cache_use("init_cache")
        batch_size = _checks.positive_int("batch_size", batch_size)
        max_length = _checks.positive_int("max_length", max_length)
        streams = (self.order + 1) * self.channels
        window = ops.zeros((batch_size, self.short_filter_order - 1, streams), self.compute_dtype)
        island = _checks.island_dtype(self.dtype_policy)
        filters, _ = self._filters(max_length)
        inputs = [
            ops.zeros((batch_size, max_length, self.channels), island)
            for _ in range(self.order - 1)
        ]
        return (window, filters, *inputs)

    def call_with_cache(self, inputs, cache, cache_index):
        """The outputs at positions `cache_index … cache_index + T - 1`, the earlier positions
        read from `cache` (inference; no mask).

        A step (`T = 1`) sums `h_{t-s} · u_s` over the cached inputs directly with the cached
        filters, `O(max_length · D)` per long convolution; a prompt (`T > 1`) evaluates the
        filters again (into the new cache) and uses the FFT convolution. Chunked prefill
        (`cache_index > 0` with `T > 1`) works too.

        Args:
            inputs: `(batch, T, channels)`, `T` static (the prompt, then 1 per step).
            cache: the tuple of `init_cache` or of the previous call.
            cache_index: position of `inputs[:, 0]`, a Python int or a scalar int tensor;
                `cache_index + T` must not exceed the cache's `max_length`.

        Returns:
            `(outputs, new_cache)`: `outputs` `(batch, T, channels)` equal to
            `self(full_inputs)` at those positions within float32 round-off.
        """
        self._check_cache_use("call_with_cache")
        if not isinstance(cache, (tuple, list)) or len(cache) != self.order + 1:
            raise ValueError(
                f"HyenaOperator.call_with_cache takes the cache of `init_cache`, a tuple of "
                f"{self.order + 1} tensors. Received: a {type(cache).__name__} of "
                f"{len(cache) if isinstance(cache, (tuple, list)) else 'no'} items"
            )
        inputs = ops.convert_to_tensor(inputs, self.compute_dtype)
        _checks.floating_input("HyenaOperator", inputs)
        island = _checks.island_dtype(self.dtype_policy)
        window, filters, *past = cache
        steps, max_length = inputs.shape[1], past[0].shape[1]
        if isinstance(cache_index, int):
            start = cache_index
            if not 0 <= start <= max_length - steps:
                raise ValueError(
                    f"`cache_index` + the {steps} new tokens must fit in the cache of "
                    f"{max_length} positions. Received: cache_index={cache_index}"
                )
        else:
            start = ops.cast(cache_index, "int32")

        p = self.in_projection(inputs)
        taps = self.short_filter_order - 1
        if taps:
            # Rows of the window before position 0 hold nothing: zero them (a reused cache).
            before = start - taps + ops.arange(taps, dtype="int32")
            window = window * ops.cast(before >= 0, window.dtype)[None, :, None]
            padded = ops.concatenate([window, ops.cast(p, window.dtype)], axis=1)
            window = padded[:, steps:]
        else:
            padded = p
        q = self._short_conv(ops.cast(padded, island), steps)

        if steps > 1:  # the filters as the weights are now; a step reads them from the cache
            filters, _ = self._filters(max_length)
        z = self._stream(q, self.order)
        new_past = []
        for i in range(self.order - 1):
            u = self._stream(q, self.order - 1 - i) * z
            history = ops.slice_update(past[i], [0, start, 0], u)
            new_past.append(history)
            h = self._per_convolution(filters, i)
            if steps == 1:
                # h_{t-s} for s = 0 … max_length - 1, zero for s > t (t = start).
                lags = start - ops.arange(max_length, dtype="int32")
                taken = ops.take(h, ops.maximum(lags, 0), axis=0)
                taken = taken * ops.cast(lags >= 0, taken.dtype)[:, None]
                # The sum over s as a product with ones, (B, 1, D): XLA's CPU reduction over a
                # middle axis measured 20x slower at 16K positions.
                ones = ops.ones((1, max_length), taken.dtype)
                z = ops.matmul(ones, history * taken[None])
            elif isinstance(start, int):
                end = start + steps
                z = self._long_conv(history[:, :end], h[:end], None, end)[:, start:]
            else:
                full = self._long_conv(history, h, None, max_length)
                z = ops.slice(full, [0, start, 0], [ops.shape(u)[0], steps, self.channels])
            z = z + self._per_convolution(self.skip, i) * u
        y = self.out_projection(ops.cast(self._stream(q, 0) * z, self.compute_dtype))
        return y, (window, filters, *new_past)

    def _check_cache_use(self, method):
        if not self.causal:
            raise ValueError(
                f"HyenaOperator.{method} generates token by token and needs the causal form; "
                f"build it with causal=True. Received: causal={self.causal}"
            )
        if not self.built:
            raise ValueError(
                f"HyenaOperator.{method} needs the layer built first (its weights follow the "
                "channels): call it once or build it"
            )

    # --- configuration and declarations -------------------------------------------------

    def get_config(self):
        return {
            **super().get_config(),
            "max_sequence_length": self.max_sequence_length,
            "order": self.order,
            "causal": self.causal,
            "short_filter_order": self.short_filter_order,
            **filter_options(self),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "fft_impl": self.fft_impl,
        }

    @staticmethod
    def count_parameters(channels, arguments):
        """The projections `D → (o+1)·D` and `D → D` with biases, the short convolution's
        `k` taps and bias per stream, the skip term per filter channel and the implicit
        filter's FFN (twice when bidirectional); none depends on the length."""
        order = validation.integer("order", arguments.get("order", 2), minimum=2)
        width = arguments.get("filter_order", 64)
        hidden = arguments.get("num_inner_mlps", 2)
        taps = arguments.get("short_filter_order", 3)
        streams, filter_channels = (order + 1) * channels, (order - 1) * channels
        implicit_filter = (
            width  # the sine frequencies
            + arguments.get("emb_dim", 3) * width
            + width
            + hidden * (width * width + width)
            + width * filter_channels
        )
        filters = 1 if arguments.get("causal", True) else 2
        return (
            channels * streams
            + streams
            + (taps + 1) * streams
            + filter_channels
            + filters * implicit_filter
            + channels * channels
            + channels
        )

    @staticmethod
    def count_flops(tally, tokens, channels, arguments):
        """The projections, the short convolution, the implicit filters at the `N` positions
        (the FFN, sines, window; twice when bidirectional), per long convolution the rfft of
        its input and of its kernel and the irfft at `2N` per channel, the spectrum product
        and the skip term, and the gating.

        The filters do not depend on the example but are computed on every call, so they are
        counted (as for a batch of one). The positional features (`emb_dim` numbers per
        position) are not counted, like a position-embedding lookup."""
        from spectralmix import flops

        order = validation.integer("order", arguments.get("order", 2), minimum=2)
        causal = arguments.get("causal", True)
        width = arguments.get("filter_order", 64)
        features = arguments.get("emb_dim", 3)
        hidden = arguments.get("num_inner_mlps", 2)
        taps = arguments.get("short_filter_order", 3)
        streams, convolutions = (order + 1) * channels, order - 1
        filter_channels = convolutions * channels

        tally.dense(tokens, channels, streams)
        tally.dense(tokens * streams, taps, 1)  # depthwise: one `taps → 1` row per column
        for _ in range(1 if causal else 2):
            tally.dense(tokens, features, width)
            for _ in range(hidden):
                tally.dense(tokens, width, width)
            matmul = flops.MULTIPLY_ADD * tokens * width * filter_channels  # no bias
            tally.matmul += matmul
            tally.add("dense", matmul)
            tally.add("activation", SINE_PER_ELEMENT * tokens * width * (1 + hidden))
            if arguments.get("modulate", True):
                tally.add("spectral_filter", WINDOW_PER_ELEMENT * tokens * filter_channels)
            if arguments.get("normalized", False):
                tally.add("spectral_filter", NORMALIZE_PER_ELEMENT * tokens * filter_channels)
        transform = flops.fft_cost(flops.REAL_FFT_COEFFICIENT, 2 * tokens)
        tally.add("fft", 3 * transform * filter_channels)
        tally.add(
            "spectral_filter", flops.COMPLEX_MULTIPLY_PER_BIN * (tokens + 1) * filter_channels
        )
        tally.add("elementwise", SKIP_PER_ELEMENT * tokens * filter_channels)
        tally.add("elementwise", order * tokens * channels)  # the o - 1 gates before, x_0 after
        tally.dense(tokens, channels, channels)
