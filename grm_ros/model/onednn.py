"""oneDNN matrix products for the fast path's linear layers on the CPU.

PyTorch sends an fp32 ``nn.Linear`` to MKL, which on this project's AMD EPYC cores takes slower kernels
than oneDNN for a block's shapes (qkv, 320x768 by 768x2304: 11.4 against 8.9 ms in one process). A
vitb_256 forward ran 1.08-1.13x faster (paired medians of 30 runs), score maps within 1.2e-6. Only the fast
path switches (the engine's ``torch`` backend); the reference path stays the authors' plain PyTorch.

Only large weights switch: per product, oneDNN won 1.2-1.7x on 768x2304 and 768x3072 weights, broke even
near 768x768 and lost up to 1.2x on small_cpu's 192-wide ones (paired runs, 80 to 1,280 rows).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

MIN_WEIGHT = 1 << 20  # in x out features from which a linear switches (vitb_256: qkv, fc1, fc2)


def onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class OneDNNLinear(nn.Linear):
    """``nn.Linear`` whose inference-time fp32 CPU product runs in oneDNN on the weight as it is (packing
    a copy gained nothing measurable, and would go stale when weights load). Training, autograd, CUDA and
    half precision take ``nn.Linear``'s own path. Parameter names are unchanged, so checkpoints load."""

    def forward(self, x: Tensor) -> Tensor:
        if (self.training or torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32
                or torch.onnx.is_in_onnx_export()):  # an export wants the portable op
            return super().forward(x)
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")


def use_onednn_linears(model: nn.Module, min_weight: int = MIN_WEIGHT) -> int:
    """Switch every plain ``nn.Linear`` in ``model`` with at least ``min_weight`` weights to
    ``OneDNNLinear`` in place, by changing the module's class as ``torch.nn.utils.parametrize`` does.
    Returns how many switched (0 without oneDNN)."""
    if not onednn_available():
        return 0
    linears = [m for m in model.modules() if type(m) is nn.Linear and m.weight.numel() >= min_weight]
    for module in linears:
        module.__class__ = OneDNNLinear
    return len(linears)
