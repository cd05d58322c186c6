"""Fixtures for the model tests: a tiny variant that runs in milliseconds."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from grm_ros.model import GRM, GRMConfig


@pytest.fixture
def tiny_cfg() -> GRMConfig:
    return GRMConfig(name="tiny", embed_dim=64, depth=3, num_heads=2, template_size=32, search_size=64,
                     head_channels=32, division_hidden=(32, 16), pretrain_grid=4)


@pytest.fixture
def spread_division() -> Callable[[GRM], GRM]:
    """Give the division MLPs O(1) logit gaps, so decisions are far from ties and both classes occur:
    comparisons between numerically different but equivalent runs then take the same decisions. A smaller
    ``gain`` keeps C.3's probabilities spread inside (0, 1) instead of saturating them."""

    @torch.no_grad()
    def spread(model: GRM, gain: float = 3.0) -> GRM:
        gen = torch.Generator().manual_seed(7)
        for block in model.backbone.blocks[1:]:
            mlp = block.attn.divide_predict
            for layer in (mlp[0], mlp[2], mlp[4]):
                fan_in = layer.weight.shape[1]
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * gain / fan_in**0.5)
        return model

    return spread


def random_crops(cfg: GRMConfig, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    template = torch.randn(batch, 3, cfg.template_size, cfg.template_size, generator=gen)
    search = torch.randn(batch, 3, cfg.search_size, cfg.search_size, generator=gen)
    return template, search


@pytest.fixture
def crops() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    return random_crops
