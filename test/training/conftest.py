"""Fixtures for the training tests: a tiny network and small procedural videos, so the area runs in seconds
and does not depend on which picture packages are installed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
import torch

from grm_ros.datasets.materials import Material, discover_material
from grm_ros.datasets.synthetic import SynthParams
from grm_ros.model import GRMConfig
from grm_ros.training.sampler import SamplerConfig, SyntheticSource

SMALL = SynthParams(width=160, height=120, length=30, min_target=12.0, max_target=40.0)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The tiny networks here are far too small to gain from threads, and on a shared 2-core machine two
    threads run several times slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_cfg() -> GRMConfig:
    return GRMConfig(
        name="tiny_train",
        embed_dim=32,
        depth=2,
        num_heads=2,
        template_size=32,
        search_size=64,
        head_channels=16,
        division_hidden=(16, 8),
        drop_path=0.0,
        pretrain_grid=4,
    )


@pytest.fixture(scope="session")
def procedural_train() -> Material:
    return discover_material("train", procedural=True)


@pytest.fixture(scope="session")
def small_params() -> SynthParams:
    return SMALL


@pytest.fixture(scope="session")
def still_params() -> SynthParams:
    """No camera motion, lighting, blur, noise, distractors or occluders: only the target moves."""
    return replace(
        SMALL,
        p_crossing_distractor=0.0,
        max_wandering_distractors=0,
        p_occluder=0.0,
        p_camera_motion=0.0,
        p_motion_blur=0.0,
        p_defocus=0.0,
        p_illumination=0.0,
        p_noise=0.0,
    )


@pytest.fixture
def small_source(procedural_train: Material) -> SyntheticSource:
    return SyntheticSource(count=1000, seed=0, params=SMALL, material=procedural_train)


@pytest.fixture
def tiny_sampler(tiny_cfg: GRMConfig) -> SamplerConfig:
    return SamplerConfig.for_model(tiny_cfg)
