"""Shared fixtures: a small random-weight GRM and a synthetic sequence with a moving textured square."""

import numpy as np
import pytest
import torch

from grm_ros.model import GRM, load_variant


@pytest.fixture(scope="session")
def model() -> GRM:
    """Random weights, except that the size branch is damped to predict about a quarter of the search crop
    (the target's own size at search factor 4): raw random weights predict half the crop, so boxes double
    every frame until they fill the image and every later frame looks the same to a test."""
    torch.manual_seed(0)
    net = GRM(load_variant("small_cpu")).eval()
    with torch.no_grad():
        net.box_head.conv5_size.weight.mul_(0.1)
        net.box_head.conv5_size.bias.fill_(-1.1)
    return net


def make_sequence(n: int = 4, height: int = 120, width: int = 160, seed: int = 0) -> tuple[list, np.ndarray]:
    """Frames (RGB uint8) of a bright square moving right over a smooth random background, and its boxes."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
    background = np.kron(background, np.ones((8, 8, 1), dtype=np.uint8))
    frames, boxes = [], []
    for i in range(n):
        frame = background.copy()
        x, y = 40 + 3 * i, 50 + i
        frame[y : y + 24, x : x + 20] = (250, 200, 40)
        frame[y + 8 : y + 16, x + 6 : x + 14] = (20, 20, 200)
        frames.append(frame)
        boxes.append((x, y, 20, 24))
    return frames, np.asarray(boxes, dtype=np.float64)


@pytest.fixture
def sequence() -> tuple[list, np.ndarray]:
    return make_sequence()


@pytest.fixture
def sequence_factory():
    return make_sequence
