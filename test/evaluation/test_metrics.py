"""Metric functions against hand-computed cases."""

import numpy as np
import pytest

from grm_ros.datasets import Sequence
from grm_ros.evaluation.metrics import (
    PROTOCOLS,
    Protocol,
    center_error,
    iou,
    score_sequence,
    success_curve,
    summarize,
)

GT = np.array([[10.0, 10.0, 20.0, 10.0]] * 4)
ALL = np.ones(4, dtype=bool)
DEV = PROTOCOLS["dev"]


def test_perfect_boxes_score_twenty_of_twentyone_thresholds():
    s = score_sequence("p", GT, GT, ALL, DEV)
    # IoU 1 passes every threshold but the strict "> 1.0".
    assert s.auc == pytest.approx(20 / 21)
    assert (s.p20, s.np20, s.miou, s.sr50, s.sr75, s.failed) == (1.0, 1.0, 1.0, 1.0, 1.0, 0)


def test_all_miss_scores_zero_after_the_first_frame():
    pred = GT.copy()
    pred[1:, 0] += 200.0  # far away, no overlap
    s = score_sequence("m", pred, GT, ALL, DEV)
    # Frame 1 is the GT box (IoU 1); frames 2..4 score IoU 0, which fails even t = 0.
    assert s.auc == pytest.approx(0.25 * 20 / 21)
    assert s.p20 == pytest.approx(0.25)
    assert s.miou == pytest.approx(0.25)


def test_half_overlap():
    pred = np.array([[10.0, 10.0, 10.0, 10.0]])  # left half of the 20x10 GT box
    assert iou(pred, GT[:1])[0] == pytest.approx(0.5)
    assert center_error(pred, GT[:1])[0] == pytest.approx(5.0)
    assert center_error(pred, GT[:1], normalized=True)[0] == pytest.approx(0.25)  # 5 px / 20 px width
    curve = success_curve(np.array([0.5]))
    assert curve.sum() == 10  # thresholds 0.00 .. 0.45; 0.5 > 0.5 is false
    s = score_sequence("h", np.vstack([GT[:1], np.repeat(pred, 3, axis=0)]), GT, ALL, DEV)
    assert s.auc == pytest.approx((20 / 21 + 3 * 10 / 21) / 4)
    assert s.p20 == 1.0
    assert s.np20 == pytest.approx(0.25)  # only frame 1 is within 0.2 of the GT size
    assert s.sr50 == pytest.approx(0.25)


def test_iou_is_continuous_not_plus_one():
    # 1-px boxes offset by half a pixel: continuous IoU = 0.5*1 / (1 + 1 - 0.5) = 1/3.
    assert iou(np.array([[0.0, 0.0, 1.0, 1.0]]), np.array([[0.5, 0.0, 1.0, 1.0]]))[0] == pytest.approx(1 / 3)


def test_degenerate_and_missing_predictions_are_failures():
    pred = GT.copy()
    pred[1] = [10, 10, 0, 10]  # zero width
    pred[2] = np.nan  # tracker reported failure
    assert iou(pred, GT).tolist() == [1.0, 0.0, 0.0, 1.0]
    assert np.isinf(center_error(pred, GT)[1:3]).all()
    s = score_sequence("d", pred, GT, ALL, DEV)
    assert s.failed == 2
    assert s.miou == pytest.approx(0.5)
    assert s.p20 == pytest.approx(0.5)


def test_otb_holds_the_previous_box_for_a_failed_frame():
    pred = GT.copy()
    pred[2] = np.nan
    s = score_sequence("o", pred, GT, ALL, PROTOCOLS["otb"])
    assert s.failed == 1
    assert s.miou == pytest.approx(1.0)


def test_degenerate_gt_box_is_not_visible():
    gt = GT.copy()
    gt[3] = [10, 10, 0, 0]
    seq = Sequence("g", [f"{i}.jpg" for i in range(4)], gt)
    assert seq.visible.tolist() == [True, True, True, False]


def test_absent_frames_follow_each_protocol():
    gt = GT.copy()
    gt[2] = np.nan
    visible = np.array([True, True, False, True])
    pred = GT.copy()
    pred[2] = [500, 500, 5, 5]  # whatever the tracker says on the absent frame
    dev = score_sequence("a", pred, gt, visible, DEV)
    assert dev.scored == 3 and dev.miou == 1.0 and dev.p20 == 1.0
    lasot = score_sequence("a", pred, gt, visible, PROTOCOLS["lasot"])
    assert lasot.scored == 4 and lasot.miou == pytest.approx(0.75) and lasot.p20 == pytest.approx(0.75)
    otb = score_sequence("a", pred, gt, visible, PROTOCOLS["otb"])
    assert otb.miou == pytest.approx(0.75) and otb.p20 == 1.0  # OTB toolkit: error -1 counts as a hit


def test_got10k_skips_frame_one_clips_to_image_and_pools_frames():
    proto = PROTOCOLS["got10k"]
    gt = np.array([[0.0, 0.0, 10.0, 10.0]] * 3)
    pred = np.array([[50.0, 50.0, 1.0, 1.0], [-10.0, 0.0, 20.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    s = score_sequence("g", pred, gt, np.ones(3, bool), proto, image_size=(10, 10))
    # Frame 1 is not scored; frame 2 is clipped to the image and becomes the GT box.
    assert s.scored == 2 and s.miou == pytest.approx(1.0)
    with pytest.raises(ValueError, match="image_size"):
        score_sequence("g", pred, gt, np.ones(3, bool), proto)
    short = score_sequence("s", gt[:2], gt[:2], np.ones(2, bool), proto, image_size=(10, 10))
    long_miss = np.array([[0.0, 0.0, 10.0, 10.0]] + [[5.0, 5.0, 1.0, 1.0]] * 3)
    long_gt = np.repeat(gt[:1], 4, axis=0)
    long = score_sequence("l", long_miss, long_gt, np.ones(4, bool), proto, image_size=(10, 10))
    pooled = summarize([short, long], proto)
    assert pooled.miou == pytest.approx((1.0 + 3 * 0.01) / 4)  # frame-weighted, not (1 + 0.01) / 2
    seq_mean = summarize([short, long], DEV)
    assert seq_mean.miou == pytest.approx((1.0 + 0.01) / 2)


def test_fps_excludes_initialisation():
    times = np.array([5.0, 0.01, 0.03])
    s = score_sequence("t", GT[:3], GT[:3], ALL[:3], DEV, times=times)
    assert s.fps == pytest.approx(2 / 0.04)


def test_bad_protocol_and_length_mismatch_raise():
    with pytest.raises(ValueError, match="absent"):
        Protocol("x", absent="ignore")
    with pytest.raises(ValueError, match="3 predicted boxes for 4"):
        score_sequence("n", GT[:3], GT, ALL, DEV)
