"""Per-target isolation in Tracker.update and degenerate frames (issue 18, defects 2 and 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from grm_ros.tracking import Tracker, TrackState, tracker_for
from grm_ros.tracking.geometry import CLIP_MARGIN, MIN_FRAME_SIDE, check_frame_size

OTHER = (100, 20, 30, 20)


def _two_targets(model, frames, gt) -> tuple[Tracker, int, int]:
    tracker = tracker_for(model)
    good = tracker.start(frames[0], gt[0], label="good")
    return tracker, good, tracker.start(frames[0], OTHER, label="bad")


def _assert_good(result) -> None:
    assert result.state in (TrackState.TRACKING, TrackState.LOST) and result.reason == ""
    assert np.isfinite([*result.box, result.confidence]).all()


def test_a_target_whose_state_turns_non_finite_is_stopped_and_the_other_keeps_tracking(model, sequence):
    frames, gt = sequence
    tracker, good, bad = _two_targets(model, frames, gt)
    last_box = tuple(float(v) for v in tracker.targets[bad].box)
    tracker.targets[bad].template = torch.full_like(tracker.targets[bad].template, float("nan"))
    first, failed = tracker.update(frames[1])
    _assert_good(first)
    assert (failed.target_id, failed.state, failed.label) == (bad, TrackState.STOPPED, "bad")
    assert failed.box == last_box
    assert failed.confidence == 0.0 and "non-finite" in failed.reason
    assert list(tracker.targets) == [good]
    (second,) = tracker.update(frames[2])  # stopped for good: reported once
    _assert_good(second)
    assert second.target_id == good and second.age == 2


def test_a_target_whose_step_raises_is_stopped_and_the_other_keeps_tracking(model, sequence):
    frames, gt = sequence
    tracker, good, bad = _two_targets(model, frames, gt)
    tracker.targets[bad].template = tracker.targets[bad].template[:, :, :7]  # no forward can take this
    first, failed = tracker.update(frames[1])
    _assert_good(first)
    assert (failed.target_id, failed.state) == (bad, TrackState.STOPPED)
    assert failed.reason.startswith("step failed: ")
    assert [r.target_id for r in tracker.update(frames[2])] == [good]


def test_isolated_results_equal_the_batched_ones_when_nothing_fails(model, sequence):
    """The per-target fallback only runs on failure: the healthy batch is bit-identical to before."""
    frames, gt = sequence
    plain, _, _ = _two_targets(model, frames, gt)
    broken, _, bad = _two_targets(model, frames, gt)
    broken.targets[bad].template = broken.targets[bad].template[:, :, :7]
    expected = plain.update(frames[1])[0]
    got = broken.update(frames[1])[0]  # the good target, stepped alone after the batch raised
    np.testing.assert_allclose(got.box, expected.box, atol=1e-3)
    assert got.confidence == pytest.approx(expected.confidence, abs=1e-5)


@pytest.mark.parametrize(("height", "width"), [(1, 1), (5, 5), (9, 200), (200, 9)])
def test_frames_1x1_and_5x5_below_the_clip_margin_are_refused(model, sequence, height, width):
    """Defect 3: on a 1x1 frame clip_box put the TRACKING box at (-9, -9, 10, 10), outside the image."""
    frames, gt = sequence
    tracker = tracker_for(model)
    tracker.start(frames[0], gt[0])
    tiny = np.zeros((height, width, 3), np.uint8)
    with pytest.raises(ValueError, match=f"smaller than the tracker's minimum of {MIN_FRAME_SIDE}x"):
        tracker.update(tiny)
    with pytest.raises(ValueError, match="minimum"):
        tracker.start(tiny, (0, 0, 1, 1))
    (result,) = tracker.update(frames[1])  # the refused frame changed nothing
    assert result.age == 1 and result.state is TrackState.TRACKING


def test_the_minimum_frame_is_the_clip_margin_and_boxes_stay_inside_it(model, sequence):
    assert MIN_FRAME_SIDE == CLIP_MARGIN
    check_frame_size(MIN_FRAME_SIDE, MIN_FRAME_SIDE)
    frames, gt = sequence
    tracker = tracker_for(model)
    tracker.start(frames[0], gt[0])
    for frame in (frames[1][:10, :10], frames[1][:10, :300], frames[1][:11, :13]):
        (result,) = tracker.update(np.ascontiguousarray(frame))
        x, y, w, h = result.box
        assert min(x, y) >= 0 and x + w <= frame.shape[1] and y + h <= frame.shape[0], result.box
