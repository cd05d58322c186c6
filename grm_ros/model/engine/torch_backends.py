"""The PyTorch backends: ``torch`` (eager), ``compiled`` (torch.compile) and ``cuda_graphs``.

``torch`` on the CPU switches the large linear layers to oneDNN (``grm_ros.model.onednn``: 1.08-1.13x per
vitb_256 forward; the fast attention path only, so the reference path stays the authors' plain PyTorch).

``compiled`` runs each bucket through inductor with the weights frozen into the code (so it can prepack
them and fuse each block's element-wise tail). On 2 CPU cores it measured 1.3-1.6x the eager path for
small_cpu, whose forward is per-op overhead, and no steady gain for vitb_256 (0.99-1.04x), at a one-off
compile of 45-70 s per bucket; the engine builds the one-target bucket at construction.

``cuda_graphs``: a batch-1 forward is hundreds of small kernels, so on a fast GPU launch overhead, not the
math, sets the frame time. A CUDA graph per bucket replays them all with one launch, between static
input and output buffers. A bucket whose capture this torch/driver refuses runs eagerly (with a warning).
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from grm_ros.model.engine.buckets import Bucketed, Step
from grm_ros.model.engine.network import HeadMaps, MapsNet, example_inputs
from grm_ros.model.onednn import use_onednn_linears

log = logging.getLogger(__name__)

WARMUP_RUNS = 3  # cuDNN/cuBLAS pick algorithms and allocate workspaces before capture


def eager_backend(net: MapsNet) -> Step:
    """The network as it is, plus the oneDNN linears on a fast-path fp32 CPU model."""
    param = next(net.parameters())
    if param.device.type == "cpu" and param.dtype == torch.float32 and net.model.attention == "fast":
        use_onednn_linears(net.model)
    return net


def compiled_backend(net: MapsNet) -> Bucketed:
    compiled = torch.compile(net, dynamic=False, options={"freezing": True})
    param = next(net.parameters())

    def build(size: int) -> Step:
        compiled(*example_inputs(net.model.cfg, size, device=param.device, dtype=param.dtype))  # compile now
        return compiled

    return Bucketed(build)


class GraphStep:
    """Fixed input/output buffers for one bucket; the forward between them is a captured CUDA graph
    (``graph`` None: capture was refused, the forward runs eagerly on the same buffers)."""

    def __init__(self, net: MapsNet, size: int) -> None:
        param = next(net.parameters())
        self.net = net
        self.template, self.search = example_inputs(net.model.cfg, size, device=param.device,
                                                    dtype=param.dtype)
        self.graph: torch.cuda.CUDAGraph | None = None
        try:
            self.outputs = self._capture()
        except RuntimeError as err:  # an op this torch/driver cannot capture: stay correct, run eagerly
            log.warning("CUDA graph capture failed for batch %d (%s); running that bucket eagerly", size, err)
            self.graph = None

    def _capture(self) -> HeadMaps:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(WARMUP_RUNS):
                self.net(self.template, self.search)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.inference_mode():
            return self.net(self.template, self.search)

    def __call__(self, template: Tensor, search: Tensor) -> HeadMaps:
        """The maps in this bucket's output buffers, overwritten by its next call."""
        if self.graph is None:
            return self.net(template, search)
        self.template.copy_(template, non_blocking=True)
        self.search.copy_(search, non_blocking=True)
        self.graph.replay()
        return self.outputs


def cuda_graphs_backend(net: MapsNet) -> Bucketed:
    if next(net.parameters()).device.type != "cuda":
        raise ValueError("backend cuda_graphs needs a CUDA device")
    return Bucketed(lambda size: GraphStep(net, size))
