import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spectralmix.backends import keras_ops  # noqa: E402
from spectralmix.backends import torch as torch_shim  # noqa: E402
from tests.backends.shim_checks import ShimChecks  # noqa: E402
from tests.tolerances import TOLERANCES  # noqa: E402


class TestTorchShim(ShimChecks):
    shim = torch_shim
    framework = "torch"

    def to_tensor(self, a):
        return torch.as_tensor(np.asarray(a))

    def to_numpy(self, t):
        return t.detach().numpy()

    def jit(self, fn):
        # fullgraph=True: the whole core traces without a graph break.
        torch._dynamo.reset()
        return torch.compile(fn, fullgraph=True)


def _edge_inputs(rng, batch_scale):
    """float64 inputs with the cases the fused backward must get right: a head whose tokens
    are all zero (S = 0), filter entries exactly 0 (W = 0), negative filter entries, and
    positive biases (relu(b) > 0 at |G| = 0)."""
    x = rng.standard_normal((3, 10, 8))
    x[1, :, 0:2] = 0.0  # batch 1, head 0: the whole spectrum is 0
    scale = rng.standard_normal((3 if batch_scale else 1, 4, 6))
    scale[0, 1, 2] = 0.0
    shift = 0.3 * rng.standard_normal((1, 4, 6))
    shift[0, 2, :] = 0.2
    return [torch.tensor(a, requires_grad=True) for a in (x, scale, shift)]


def _value_and_grads(fn, inputs, cotangent):
    out = fn(*inputs)
    grads = torch.autograd.grad((out * cotangent).sum(), inputs)
    return [out.detach().numpy(), *(g.numpy() for g in grads)]


# 0: the exact form; 1e-3: the layers' default (the authors' clamp); 0.5: most coefficients of
# these inputs below epsilon, so the clamped branch of the backward is exercised everywhere.
EPSILONS = [0.0, 1e-3, 0.5]


@pytest.mark.parametrize("epsilon", EPSILONS)
@pytest.mark.parametrize("batch_scale", [True, False])
def test_fused_modrelu_filter_matches_the_keras_ops_core(rng, batch_scale, epsilon):
    """The hand-written backward of `_ModReLUFilter` against autograd of the `keras.ops` core
    (what torch.compile and every other backend run), values and all three gradients."""
    inputs = _edge_inputs(rng, batch_scale)
    cotangent = torch.tensor(rng.standard_normal((3, 10, 8)))

    def portable(x, scale, shift):
        return keras_ops.spectral_filter(x, scale, shift, num_heads=4, epsilon=epsilon)

    def fused(x, scale, shift):
        return torch_shim.spectral_filter(x, scale, shift, num_heads=4, epsilon=epsilon)

    expected = _value_and_grads(portable, inputs, cotangent)
    actual = _value_and_grads(fused, inputs, cotangent)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=TOLERANCES["float64"], atol=TOLERANCES["float64"])
    # the zero head's outputs are 0; in the exact form its tokens get no gradient, with
    # epsilon > 0 the map is linear there (z · relu(b) / epsilon) and they do
    np.testing.assert_array_equal(actual[0][1, :, 0:2], 0.0)
    if epsilon == 0:
        np.testing.assert_array_equal(actual[1][1, :, 0:2], 0.0)


def test_fused_modrelu_filter_without_grad(rng):
    """Inference (no tensor requires grad, or under no_grad) gives the values of training."""
    inputs = _edge_inputs(rng, batch_scale=True)
    with_grad = torch_shim.spectral_filter(*inputs, num_heads=4).detach().numpy()
    plain = [t.detach() for t in inputs]
    without = torch_shim.spectral_filter(*plain, num_heads=4).numpy()
    with torch.no_grad():
        no_grad = torch_shim.spectral_filter(*inputs, num_heads=4).numpy()
    np.testing.assert_array_equal(without, with_grad)
    np.testing.assert_array_equal(no_grad, with_grad)


@pytest.mark.parametrize("epsilon", [0.0, 0.5])
def test_compiled_gradients_match_eager(rng, epsilon):
    """torch.compile runs the keras.ops core; its gradients equal the fused backward's."""
    inputs = _edge_inputs(rng, batch_scale=False)
    inputs = [t.detach().float().requires_grad_() for t in inputs]
    cotangent = torch.tensor(rng.standard_normal((3, 10, 8)), dtype=torch.float32)

    def fn(x, scale, shift):
        return torch_shim.spectral_filter(x, scale, shift, num_heads=4, epsilon=epsilon)

    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True)
    tol = TOLERANCES["float32_grad"]
    for a, e in zip(
        _value_and_grads(compiled, inputs, cotangent),
        _value_and_grads(fn, inputs, cotangent),
        strict=True,
    ):
        np.testing.assert_allclose(a, e, rtol=tol, atol=tol * max(1.0, float(np.abs(e).max())))


def test_second_derivative_of_the_eager_modrelu_filter_raises(rng):
    """Documented limit: the hand-written backward is `once_differentiable`."""
    x = torch.tensor(rng.standard_normal((2, 8, 8)), requires_grad=True)
    scale, shift = (
        torch.ones(1, 4, 5, dtype=torch.float64),
        torch.zeros(1, 4, 5, dtype=torch.float64),
    )
    out = torch_shim.spectral_filter(x, scale, shift, num_heads=4)
    (grad,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        grad.sum().backward()
