import math

import pytest
import torch

from grm_ros.training.heatmap import draw_gaussian, gaussian_radius, generate_heatmap


def test_radius_is_the_cornernet_bug_version():
    # 4x4-cell box, min_overlap 0.7: the third root (b3 + sqrt(b3² - 4 a3 c3)) / 2 with a3 = 2.8,
    # b3 = -11.2, c3 = -4.8 is (-11.2 + sqrt(179.2)) / 2 = 1.0933; the textbook /(2 a3) would give 0.39.
    assert gaussian_radius(4.0, 4.0) == pytest.approx((-11.2 + math.sqrt(179.2)) / 2, rel=1e-9)
    assert int(gaussian_radius(4.0, 4.0)) == 1


def test_heatmap_of_a_hand_computed_box():
    # box (0.25, 0.25, 0.25, 0.25) on a 16-cell map: 4x4 cells, centre (6, 6), radius 1, sigma 0.5.
    heat = generate_heatmap(torch.tensor([[0.25, 0.25, 0.25, 0.25]]), 16)[0]
    assert heat.shape == (16, 16)
    assert heat[6, 6] == 1.0
    assert heat[6, 7].item() == pytest.approx(math.exp(-2), rel=1e-6)
    assert heat[7, 7].item() == pytest.approx(math.exp(-4), rel=1e-6)
    assert (heat > 0).sum() == 9
    assert heat.sum().item() == pytest.approx(1 + 4 * math.exp(-2) + 4 * math.exp(-4), rel=1e-6)


def test_centre_uses_half_to_even_rounding():
    # centres at 2.5 and 3.5 cells round to 2 and 4 (torch.round), not 3 and 4.
    heat = generate_heatmap(torch.tensor([[2 / 16, 3 / 16, 1 / 16, 1 / 16]]), 16)[0]
    assert heat.argmax().item() == 4 * 16 + 2


def test_gaussian_is_clipped_at_the_border():
    heat = torch.zeros(4, 4)
    draw_gaussian(heat, (0, 0), 1)
    assert heat[0, 0] == 1.0 and heat[0, 1] > 0 and heat[1, 1] > 0
    assert (heat > 0).sum() == 4


def test_centre_outside_the_map_draws_nothing():
    heat = generate_heatmap(torch.tensor([[1.0, 0.2, 0.2, 0.2]]), 8)
    assert heat.sum() == 0


def test_overlapping_gaussians_merge_by_maximum():
    heat = torch.zeros(8, 8)
    draw_gaussian(heat, (3, 3), 1)
    draw_gaussian(heat, (4, 3), 1)
    assert heat[3, 3] == 1.0 and heat[3, 4] == 1.0


def test_rejects_wrong_box_shape():
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        generate_heatmap(torch.zeros(4), 16)
