import math

import pytest
import torch

from grm_ros.training.heatmap import generate_heatmap
from grm_ros.training.losses import LossWeights, focal_loss, giou_loss, tracking_loss, xywh_to_xyxy


def test_giou_loss_of_identical_boxes_is_zero():
    boxes = torch.tensor([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]])
    loss, iou = giou_loss(boxes, boxes.clone())
    assert loss.item() == pytest.approx(0.0, abs=1e-7)
    assert iou.item() == pytest.approx(1.0)


def test_giou_loss_of_disjoint_boxes_uses_the_hull():
    # IoU 0, union 2, hull 3  ->  GIoU = -(3 - 2) / 3, loss = 4/3
    loss, iou = giou_loss(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([[2.0, 0.0, 3.0, 1.0]]))
    assert loss.item() == pytest.approx(4 / 3)
    assert iou.item() == 0.0


def test_degenerate_box_gives_zero_giou_like_the_authors():
    loss, _ = giou_loss(torch.tensor([[0.5, 0.5, 0.4, 0.6]]), torch.tensor([[0.1, 0.1, 0.2, 0.2]]))
    assert loss.item() == 0.0


def test_focal_loss_on_a_known_heatmap():
    target = torch.tensor([[[[1.0, 0.5], [0.0, 0.0]]]])
    pred = torch.tensor([[[[0.8, 0.3], [0.1, 0.2]]]])
    pos = math.log(0.8) * 0.2**2
    neg = math.log(0.7) * 0.3**2 * 0.5**4 + math.log(0.9) * 0.1**2 + math.log(0.8) * 0.2**2
    assert focal_loss(pred, target).item() == pytest.approx(-(pos + neg), rel=1e-5)


def test_focal_loss_without_positives_is_the_negative_sum():
    target = torch.zeros(1, 1, 2, 2)
    pred = torch.full((1, 1, 2, 2), 0.5)
    assert focal_loss(pred, target).item() == pytest.approx(-4 * math.log(0.5) * 0.25, rel=1e-6)


def test_focal_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ"):
        focal_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 4))


def test_tracking_loss_weights_its_components_and_is_zero_for_perfect_boxes():
    gt = torch.tensor([[0.25, 0.25, 0.25, 0.25]])  # x, y, w, h in the crop
    pred_boxes = torch.tensor([[[0.375, 0.375, 0.25, 0.25]]])  # same box as cx, cy, w, h
    heatmap = generate_heatmap(gt, 16).unsqueeze(1)
    score = heatmap.clamp(1e-4, 1 - 1e-4)
    total, stats = tracking_loss({"pred_boxes": pred_boxes, "score_map": score}, gt)
    assert stats["giou"] == pytest.approx(0.0, abs=1e-6) and stats["l1"] == pytest.approx(0.0, abs=1e-7)
    assert stats["iou"] == pytest.approx(1.0)
    weights = LossWeights()
    expected = weights.giou * stats["giou"] + weights.l1 * stats["l1"] + weights.focal * stats["focal"]
    assert total.item() == pytest.approx(expected, rel=1e-6)


def test_tracking_loss_clamps_ground_truth_to_the_crop():
    gt = torch.tensor([[0.8, 0.8, 0.4, 0.4]])  # sticks out of the crop at the bottom right
    pred = torch.tensor([[[0.9, 0.9, 0.2, 0.2]]])  # exactly the visible part
    score = torch.full((1, 1, 4, 4), 0.01)
    _, stats = tracking_loss({"pred_boxes": pred, "score_map": score}, gt)
    assert torch.allclose(xywh_to_xyxy(gt).clamp(0, 1), torch.tensor([[0.8, 0.8, 1.0, 1.0]]))
    assert stats["l1"] == pytest.approx(0.0, abs=1e-6)


def test_tracking_loss_rejects_bad_targets():
    outputs = {"pred_boxes": torch.full((2, 1, 4), 0.5), "score_map": torch.full((2, 1, 4, 4), 0.5)}
    with pytest.raises(ValueError, match="gt boxes"):
        tracking_loss(outputs, torch.zeros(3, 4))
