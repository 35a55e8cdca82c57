"""The one table of numerical tolerances used by every test (`rtol` and `atol` alike).

- float32_op: one layer or op in float32 against the float64 oracle.
- float32_grad: float32 gradients against float64 finite differences of the oracle. A
  gradient sums the cotangent over every output token and channel, so its float32 rounding
  grows with that count; 1e-5 relative to the gradient's largest entry (see `assert_close`).
- float32_model: a stack of layers in float32 (error accumulates through the blocks).
- mixed: mixed_bfloat16 / mixed_float16 against float32 (8 and 11 mantissa bits; a LayerNorm
  and two matmuls per block each round once).
- float64: float64 computations that differ only in summation order.
- erf: the Abramowitz & Stegun erf of the oracle (documented bound 1.5e-7).
- export_float32: an exported model (SavedModel, ONNX, LiteRT) run in its runtime against the
  Keras model, float32. ONNX and LiteRT run the DFT-as-matmul core (float32 matmuls instead of
  an FFT, different summation order) and the runtime's own kernels; measured below 4e-6.
- distributed: a few float32 SGD steps on several devices against one device (losses and
  weights). The all-reduce sums per-device gradients in another order than one device's batch
  reduction; measured differences are at most 7e-7 after 4 steps.
- causality: how much an output at or before position t may move when only tokens after t
  change (tests/test_causality.py, relative to the outputs' largest entry), for a mixer and
  for a causal language model alike. Exactly 0 in exact arithmetic; a causal mixer that mixes
  through an FFT over the whole sequence (Hyena's long convolution) moves the earlier outputs
  by float32 round-off of the whole transform: measured at most 4.3e-7 (a 2-block Hyena
  language model; causal attention exactly 0), while every bidirectional mixer moves them by
  1e-2 or more.
"""

TOLERANCES = {
    "float32_op": 1e-5,
    "float32_grad": 1e-5,
    "float32_model": 1e-4,
    "mixed_bfloat16": 5e-2,
    "mixed_float16": 1e-2,
    "float64": 1e-10,
    "erf": 2e-7,
    "export_float32": 1e-5,
    "distributed": 1e-5,
    "causality": 1e-5,
}
