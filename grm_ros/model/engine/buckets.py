"""Static batch sizes for the backends that need them (CUDA graphs, compiled code, ONNX graphs).

K targets run in the smallest bucket >= K, padded by repeating the last target (real data, so no NaN or
odd branch can appear in the padding), and the maps are sliced back to K. More targets than the largest
bucket run in chunks of it. Each bucket's step is built once, on first use or by ``warmup``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from grm_ros.model.engine.network import HeadMaps

BUCKETS = (1, 2, 4, 8)
Step = Callable[[Tensor, Tensor], HeadMaps]


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


class Bucketed:
    """Any number of targets through steps built per bucket by ``build(size)``.

    A step may return its own static buffers (a CUDA graph's outputs), valid until its next call: the maps
    of one call are consumed before the next, and chunks are copied out before the next chunk runs.
    """

    def __init__(self, build: Callable[[int], Step], buckets: tuple[int, ...] = BUCKETS) -> None:
        if not buckets or any(b < 1 for b in buckets):
            raise ValueError(f"buckets must be positive batch sizes, got {buckets}")
        self.build, self.buckets = build, tuple(sorted(buckets))
        self.steps: dict[int, Step] = {}

    def step(self, size: int) -> Step:
        if size not in self.steps:
            self.steps[size] = self.build(size)
        return self.steps[size]

    def warmup(self, counts: tuple[int, ...] = (1,)) -> None:
        """Build the buckets for these target counts now rather than on a live frame."""
        for count in counts:
            self.step(bucket_for(count, self.buckets))

    def _run(self, template: Tensor, search: Tensor) -> HeadMaps:
        count = template.shape[0]
        size = bucket_for(count, self.buckets)
        return self.step(size)(pad_to(template, size), pad_to(search, size)).slice(count)

    def __call__(self, template: Tensor, search: Tensor) -> HeadMaps:
        largest = self.buckets[-1]
        if template.shape[0] <= largest:
            return self._run(template, search)
        return HeadMaps.cat([self._run(t, s).clone() for t, s in zip(template.split(largest),
                                                                     search.split(largest), strict=True)])
