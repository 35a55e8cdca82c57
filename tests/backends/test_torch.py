import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spectralmix.backends import torch as torch_shim  # noqa: E402
from tests.backends.shim_checks import ShimChecks  # noqa: E402


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
