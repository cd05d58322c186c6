"""The per-frame forward as a replayable CUDA graph, one per batch bucket (1, 2, 4, 8 targets).

A GRM forward at batch 1 is hundreds of small kernels; on a fast GPU the launch overhead, not the math,
sets the frame time. A CUDA graph replays all of them with one launch, but needs static shapes and static
memory, hence buckets: K targets run in the smallest bucket >= K, padded by repeating the last target
(real data, so no NaN or odd branch can appear in the padding), and the outputs are sliced back to K.
More targets than the largest bucket run in chunks of it.

On the CPU there is nothing to capture: ``StepRunner`` calls the model directly, unless ``static=True``,
which exercises the same buffer, padding and slicing code eagerly (that is what the CPU tests check).

``compile=True`` runs each bucket through ``torch.compile`` (inductor, weights frozen into the compiled
code, so it can prepack them for oneDNN and fuse the element-wise tail of every block). On 2 CPU cores it
measured 1.3-1.6x the eager fast path for small_cpu, whose forward is dominated by per-op overhead, but
no steady gain for vitb_256, whose time is in large matrix products (0.99-1.04x in three runs), at a
one-off compile of 45-70 s per bucket. ``warmup`` pays that before the first real frame.

An eager fast-path runner on the CPU switches the model's large linear layers to oneDNN (``onednn.py``);
for vitb_256 that beat the compiled path (1.48x against 1.32x over the reference in one run).
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from grm_ros.model.onednn import use_onednn_linears

log = logging.getLogger(__name__)

BUCKETS = (1, 2, 4, 8)
MAP_KEYS = ("score_map", "size_map", "offset_map")
WARMUP_RUNS = 3  # cuDNN/cuBLAS pick algorithms and allocate workspaces before capture


def bucket_for(count: int, buckets: tuple[int, ...] = BUCKETS) -> int:
    """Smallest bucket that holds ``count`` targets (the largest one if none does: run in chunks)."""
    if count < 1:
        raise ValueError(f"need at least one target, got {count}")
    return next((b for b in sorted(buckets) if b >= count), max(buckets))


def pad_to(batch: Tensor, size: int) -> Tensor:
    """``batch`` grown to ``size`` rows by repeating its last row."""
    missing = size - batch.shape[0]
    if missing < 0:
        raise ValueError(f"batch of {batch.shape[0]} does not fit a bucket of {size}")
    return batch if missing == 0 else torch.cat((batch, batch[-1:].expand(missing, *batch.shape[1:])))


class StaticStep:
    """Fixed input/output buffers for one bucket; on CUDA the forward between them is a captured graph."""

    def __init__(self, model: nn.Module, size: int, threshold: float, capture: bool,
                 forward: nn.Module | None = None) -> None:
        cfg = model.cfg
        param = next(model.parameters())
        self.model = forward if forward is not None else model
        self.size, self.threshold = size, threshold
        self.template = torch.zeros(size, 3, cfg.template_size, cfg.template_size, device=param.device,
                                    dtype=param.dtype)
        self.search = torch.zeros(size, 3, cfg.search_size, cfg.search_size, device=param.device,
                                  dtype=param.dtype)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.outputs: dict[str, Tensor] = {}
        if capture:
            self._capture()

    def _forward(self) -> dict[str, Tensor]:
        out = self.model(self.template, self.search, threshold=self.threshold)
        return {k: out[k] for k in MAP_KEYS}

    def _capture(self) -> None:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(WARMUP_RUNS):
                self._forward()
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.inference_mode():
            self.outputs = self._forward()

    def run_empty(self) -> None:
        """One forward on the current buffers (on CUDA the graph was already captured at construction)."""
        if self.graph is None:
            self.outputs = self._forward()

    def run(self, template: Tensor, search: Tensor) -> dict[str, Tensor]:
        """Maps for the first ``len(template)`` rows. Outputs of a graph are its static buffers: they are
        overwritten by the next replay, so the caller must consume them before then."""
        count = template.shape[0]
        self.template.copy_(pad_to(template, self.size), non_blocking=True)
        self.search.copy_(pad_to(search, self.size), non_blocking=True)
        if self.graph is None:
            self.outputs = self._forward()
        else:
            self.graph.replay()
        return {k: v[:count] for k, v in self.outputs.items()}


class StepRunner:
    """``runner(template, search) -> {score_map, size_map, offset_map}`` for any number of targets.

    ``capture`` (default: the model is on CUDA) records a CUDA graph per bucket on first use; ``static``
    keeps bucketed buffers without capture; ``compile`` runs the buckets through ``torch.compile`` (and
    implies ``static``, so that each bucket is compiled once for its fixed shape). None of them: plain
    eager calls. The division threshold, the model's attention path and (compiled) its weights are baked
    in, so changing any of them means a new runner.

    ``onednn`` (default: a CPU model on the fast attention path, not compiled) switches the model's linear
    layers to oneDNN in place; it changes nothing on CUDA.
    """

    def __init__(self, model: nn.Module, threshold: float = 0.0, buckets: tuple[int, ...] = BUCKETS,
                 capture: bool | None = None, static: bool = False, compile: bool = False,
                 onednn: bool | None = None) -> None:
        if not buckets or any(b < 1 for b in buckets):
            raise ValueError(f"buckets must be positive batch sizes, got {buckets}")
        on_cuda = next(model.parameters()).device.type == "cuda"
        if onednn is None:
            onednn = not on_cuda and not compile and getattr(model, "attention", "fast") == "fast"
        if onednn:
            use_onednn_linears(model)
        self.capture = on_cuda if capture is None else capture
        if self.capture and not on_cuda:
            raise ValueError("CUDA graph capture needs the model on a CUDA device")
        self.model, self.threshold, self.buckets = model, threshold, tuple(sorted(buckets))
        self.static = static or self.capture or compile
        self.compiled = torch.compile(model, options={"freezing": True}) if compile else None
        self._steps: dict[int, StaticStep] = {}

    def warmup(self, sizes: tuple[int, ...] = (1,)) -> None:
        """Build (capture, compile) the buckets for these target counts now rather than on a live frame."""
        if self.static:
            with torch.inference_mode():
                for size in sizes:
                    self.step(bucket_for(size, self.buckets)).run_empty()

    def step(self, size: int) -> StaticStep:
        if size not in self._steps:
            try:
                self._steps[size] = StaticStep(self.model, size, self.threshold, self.capture, self.compiled)
            except RuntimeError as err:  # an op this torch/driver cannot capture: stay correct, run eagerly
                if not self.capture:
                    raise
                log.warning("CUDA graph capture failed for batch %d (%s); running that bucket eagerly",
                            size, err)
                self._steps[size] = StaticStep(self.model, size, self.threshold, False, self.compiled)
        return self._steps[size]

    def __call__(self, template: Tensor, search: Tensor) -> dict[str, Tensor]:
        if not self.static:
            out = self.model(template, search, threshold=self.threshold)
            return {k: out[k] for k in MAP_KEYS}
        largest = self.buckets[-1]
        if template.shape[0] <= largest:
            return self.step(bucket_for(template.shape[0], self.buckets)).run(template, search)
        # Chunks may share a bucket's buffers, so each chunk's maps are copied out before the next runs.
        chunks = [{k: v.clone() for k, v in self.step(bucket_for(len(t), self.buckets)).run(t, s).items()}
                  for t, s in zip(template.split(largest), search.split(largest), strict=True)]
        return {k: torch.cat([c[k] for c in chunks]) for k in MAP_KEYS}
