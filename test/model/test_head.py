"""CENTER head decoding on hand-made maps."""

from __future__ import annotations

import torch

from grm_ros.model import CenterHead, cal_bbox


def test_cal_bbox_reads_the_peak_cell_without_half_cell_shift() -> None:
    side = 8
    score = torch.full((2, 1, side, side), 0.1)
    size = torch.zeros(2, 2, side, side)
    offset = torch.zeros(2, 2, side, side)
    score[0, 0, 2, 5] = 0.9  # row 2, col 5
    size[0, :, 2, 5] = torch.tensor([0.3, 0.4])
    offset[0, :, 2, 5] = torch.tensor([0.25, 0.75])
    score[1, 0, 7, 0] = 0.8
    size[1, :, 7, 0] = torch.tensor([0.5, 0.1])
    offset[1, :, 7, 0] = torch.tensor([-0.5, 0.5])
    box = cal_bbox(score, size, offset)
    expected = torch.tensor([[(5 + 0.25) / 8, (2 + 0.75) / 8, 0.3, 0.4],
                             [(0 - 0.5) / 8, (7 + 0.5) / 8, 0.5, 0.1]])
    torch.testing.assert_close(box, expected)


def test_head_maps_and_checkpoint_names() -> None:
    head = CenterHead(in_channels=16, channels=32).eval()
    score, size, offset = head(torch.randn(2, 16, 5, 5) * 50)
    assert score.shape == (2, 1, 5, 5) and size.shape == offset.shape == (2, 2, 5, 5)
    assert score.min() >= 1e-4 and score.max() <= 1 - 1e-4 and size.min() >= 1e-4 and size.max() <= 1 - 1e-4
    assert offset.abs().max() > 1  # the offset is not squashed
    names = set(head.state_dict())
    assert {"conv1_ctr.0.weight", "conv4_size.1.running_var", "conv5_offset.bias"} <= names
    assert head.conv2_ctr[0].out_channels == 16 and head.conv4_ctr[0].out_channels == 4
    assert head.conv1_ctr[1].eps == 1e-5
