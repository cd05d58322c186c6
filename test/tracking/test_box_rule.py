"""One validation rule for a box at every entrance (issue 18, defects 1 and 2): the library's start and
reacquire, detection selection, grm-track and the OPE harness all refuse the same boxes the same way."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from grm_ros.boxes import MAX_SIDE_DIAGONALS, check_box
from grm_ros.datasets import Sequence
from grm_ros.evaluation.ope import run_sequence
from grm_ros.tracking import TrackState, cli, tracker_for
from grm_ros.tracking.selection import Detection, SelectionConfig, usable_detections

H, W = 120, 160
AREA_OVERFLOWS = 1.5e154  # finite sides whose product w * h overflows float64 (defect 1)
BEYOND_FLOAT32 = 3.5e38  # finite in float64, infinite in float32 (defect 2)


@pytest.mark.parametrize(("box", "message"), [
    ((10, 10, 20), "4 numbers"),
    (("a", 1, 2, 3), "4 numbers"),
    ((math.nan, 10, 20, 20), "NaN or infinity"),
    ((10, -math.inf, 20, 20), "NaN or infinity"),
    ((10, 10, 0, 20), "positive width and height"),
    ((10, 10, 20, -1e-300), "positive width and height"),
    ((10, 10, 5e-324, 5e-324), "too small"),  # subnormal sides: w * h is 0 in float32
    ((10, 10, AREA_OVERFLOWS, AREA_OVERFLOWS), "larger than"),
    ((10, 10, BEYOND_FLOAT32, 20), "larger than"),
    ((10, 10, 2001, 20), "larger than"),  # 10 diagonals of 160x120 is 2000 px
    ((160, 10, 20, 20), "entirely outside"),
    ((-20, 10, 20, 20), "entirely outside"),
    ((10, 120, 20, 20), "entirely outside"),
])
def test_the_rule_refuses_each_kind_of_bad_box_with_its_reason(box, message):
    with pytest.raises(ValueError, match=message):
        check_box(box, (H, W))


def test_the_rule_accepts_boxes_that_overlap_the_frame_up_to_the_side_bound():
    assert MAX_SIDE_DIAGONALS == 10
    for box in [(0, 0, 1, 1), (-1990, -1000, 2000, 1100.5), (159.5, 119.5, 0.25, 0.25), (1, 2, 3e-6, 4e-6)]:
        np.testing.assert_array_equal(check_box(box, (H, W)), np.asarray(box, np.float64))


def test_without_a_frame_only_the_frame_free_part_applies():
    assert check_box((-500, 900, 20, 20)).tolist() == [-500, 900, 20, 20]  # outside any frame: fine
    with pytest.raises(ValueError, match="float32"):
        check_box((1e39, 0, 20, 20))  # the position overflows float32
    with pytest.raises(ValueError, match="float32"):
        check_box((0, 0, AREA_OVERFLOWS, AREA_OVERFLOWS))


@pytest.mark.parametrize("side", [AREA_OVERFLOWS, BEYOND_FLOAT32])
def test_box_with_huge_sides_is_refused_by_start_and_reacquire(model, sequence, side):
    """Defects 1 (1.5e154: OverflowError in crop_size) and 2 (3.5e38: accepted, then NaN on every frame)."""
    frames, gt = sequence
    tracker = tracker_for(model)
    with pytest.raises(ValueError, match="larger than 10 frame diagonals"):
        tracker.start(frames[0], (10, 10, side, side))
    good = tracker.start(frames[0], gt[0])
    with pytest.raises(ValueError, match="larger than 10 frame diagonals"):
        tracker.reacquire(good, frames[0], (10, 10, side, 20))
    (result,) = tracker.update(frames[1])
    assert result.state is TrackState.TRACKING and np.isfinite([*result.box, result.confidence]).all()


@pytest.mark.parametrize("side", [AREA_OVERFLOWS, BEYOND_FLOAT32])
def test_detection_with_huge_sides_is_not_usable(side):
    huge = Detection((10, 10, side, side), "car", 0.9)
    good = Detection((10, 10, 20, 20), "car", 0.8)
    assert usable_detections([huge, good], SelectionConfig(), W, H) == [good]


@pytest.mark.parametrize("side", [AREA_OVERFLOWS, BEYOND_FLOAT32])
def test_grm_track_box_with_huge_sides_is_a_one_line_error(tmp_path, sequence, capsys, side):
    folder = tmp_path / "img"
    folder.mkdir()
    for i, frame in enumerate(sequence[0][:2]):
        cv2.imwrite(str(folder / f"{i:05d}.png"), frame)
    out = tmp_path / "boxes.txt"
    code = cli.main(["--frames", str(folder), "--box", f"10,10,{side},{side}", "--out", str(out),
                     "--variant", "small_cpu", "--allow-random"])
    err = capsys.readouterr().err
    assert code == 2 and "larger than 10 frame diagonals" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


class _Recorder:
    """An OPE tracker that only records what it was started with."""

    def __init__(self) -> None:
        self.started: list = []

    def initialize(self, frame, box) -> None:
        self.started.append(box)

    def track(self, frame):
        return None


@pytest.mark.parametrize("side", [AREA_OVERFLOWS, BEYOND_FLOAT32])
def test_ope_refuses_a_first_groundtruth_box_with_huge_sides(tmp_path, sequence, side):
    frames = []
    for i, frame in enumerate(sequence[0][:2]):
        frames.append(tmp_path / f"{i:05d}.png")
        cv2.imwrite(str(frames[-1]), frame)
    gt = np.array([[10, 10, side, side], [10, 10, 20, 20]], np.float64)
    recorder = _Recorder()
    with pytest.raises(ValueError, match="larger than 10 frame diagonals"):
        run_sequence(recorder, Sequence("huge", frames, gt))
    assert recorder.started == []
