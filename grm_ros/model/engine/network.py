"""The one wrapper of the network for inference: GRM with tau fixed, (template, search) -> three maps.

Every backend runs this module (eagerly, compiled, captured in a CUDA graph, or exported to ONNX), so they
all compute the same function; nothing on the inference path decodes boxes (the tracker does, with its
window, in ``grm_ros.tracking.geometry``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from grm_ros.model.config import GRMConfig
from grm_ros.model.grm import GRM

MAP_NAMES = ("score_map", "size_map", "offset_map")


class HeadMaps(NamedTuple):
    """The CENTER head's outputs for K targets: score (K,1,F,F), size and offset (K,2,F,F)."""

    score: Tensor
    size: Tensor
    offset: Tensor

    def slice(self, count: int) -> HeadMaps:
        return HeadMaps(*(m[:count] for m in self))

    def clone(self) -> HeadMaps:
        return HeadMaps(*(m.clone() for m in self))

    @staticmethod
    def cat(parts: list[HeadMaps]) -> HeadMaps:
        return HeadMaps(*(torch.cat(maps) for maps in zip(*parts, strict=True)))


class MapsNet(nn.Module):
    """``model.maps`` at a fixed division threshold, as a module (what compile, capture and export take).

    Built in eval mode: the ONNX exporter restores the wrapper's mode after tracing, and a wrapper left in
    nn.Module's default training mode would switch the network to training (Gumbel division) with it.
    """

    def __init__(self, model: GRM, threshold: float) -> None:
        super().__init__()
        self.model, self.threshold = model, threshold
        self.eval()

    def forward(self, template: Tensor, search: Tensor) -> HeadMaps:
        return HeadMaps(*self.model.maps(template, search, threshold=self.threshold))


def example_inputs(cfg: GRMConfig, batch: int = 1, seed: int = 0, device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """Random normalised crops of the variant's sizes (export traces, warm-ups, parity checks)."""
    gen = torch.Generator().manual_seed(seed)
    template = torch.randn(batch, 3, cfg.template_size, cfg.template_size, generator=gen)
    search = torch.randn(batch, 3, cfg.search_size, cfg.search_size, generator=gen)
    return template.to(device, dtype), search.to(device, dtype)
