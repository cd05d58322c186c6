"""Search-crop augmentations keep the label exact: what they change, and where."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from grm_ros.training import augment
from grm_ros.training.losses import tracking_loss
from grm_ros.training.sampler import PairDataset, SamplerConfig

SIDE = 96
BOX = np.array([36.0, 40.0, 24.0, 16.0])  # x, y, w, h in crop pixels


@pytest.fixture
def crop() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)


def _inside(mask: np.ndarray, box: np.ndarray) -> np.ndarray:
    x, y, w, h = box.astype(int)
    inside = np.zeros_like(mask)
    inside[y : y + h, x : x + w] = True
    return mask & inside


@pytest.mark.parametrize("seed", range(5))
def test_occluder_covers_part_of_the_target_and_nothing_else(crop: np.ndarray, seed: int) -> None:
    out = augment.occlude(crop, BOX, np.random.default_rng(seed))
    changed = np.any(out != crop, axis=2)
    assert changed.any()
    assert np.array_equal(changed, _inside(changed, BOX))
    assert changed.sum() <= 0.55 * BOX[2] * BOX[3]


@pytest.mark.parametrize("seed", range(5))
def test_distractor_is_a_copy_of_the_template_target_beside_the_real_one(crop: np.ndarray, seed: int) -> None:
    template = np.zeros((48, 48, 3), np.uint8)
    template[12:36, 12:36] = (250, 10, 10)
    out = augment.paste_distractor(crop, BOX, template, np.array([12.0, 12.0, 24.0, 24.0]),
                                   np.random.default_rng(seed))
    changed = np.any(out != crop, axis=2)
    if changed.any():  # a paste that would leave the crop is skipped
        assert _inside(changed, BOX).sum() <= 0.1 * changed.sum()
        assert np.all(out[changed] == (250, 10, 10))


def test_blur_and_colour_keep_shape_and_type(crop: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    for out in (augment.blur(crop, rng), augment.blur(crop, rng), augment.color(crop, rng)):
        assert out.shape == crop.shape and out.dtype == np.uint8 and not np.array_equal(out, crop)


def test_negative_pairs_are_marked_and_only_push_the_score_down(tiny_cfg, small_source) -> None:
    config = SamplerConfig.for_model(tiny_cfg, p_negative=1.0, p_blur=1.0, p_color=1.0, p_occlude=1.0,
                                     p_distractor=1.0)
    dataset = PairDataset([small_source], config, seed=0)
    items = [dataset[i] for i in range(4)]
    assert all(item["present"].item() == 0.0 for item in items)
    torch.testing.assert_close(dataset[2]["search"], items[2]["search"], rtol=0, atol=0)  # by index
    batch = torch.utils.data.default_collate(items)
    side = tiny_cfg.search_feat
    outputs = {"pred_boxes": torch.full((4, 1, 4), 0.5), "score_map": torch.full((4, 1, side, side), 0.3)}
    _, stats = tracking_loss(outputs, batch["search_box"], present=batch["present"])
    assert stats["giou"] == 0 and stats["l1"] == 0 and stats["focal"] > 0
    outputs["score_map"] = torch.full((4, 1, side, side), 1e-4)
    _, quiet = tracking_loss(outputs, batch["search_box"], present=batch["present"])
    assert quiet["focal"] < 1e-3 * stats["focal"]


def test_the_authors_recipe_samples_the_same_pairs_as_before(tiny_cfg, small_source) -> None:
    """Augmentations at probability 0 draw no random numbers, so the plain sampler is unchanged."""
    plain = PairDataset([small_source], SamplerConfig.for_model(tiny_cfg), seed=5)[7]
    off = SamplerConfig.for_model(tiny_cfg, p_blur=0.0, p_negative=0.0)
    zeros = PairDataset([small_source], off, seed=5)[7]
    for key in ("template", "search", "search_box"):
        torch.testing.assert_close(plain[key], zeros[key], rtol=0, atol=0)
    assert plain["present"].item() == 1.0
