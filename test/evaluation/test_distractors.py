"""Distractor benchmark: token counts on a scripted crossing, the synthetic set's determinism, and the
command end to end on one short sequence with random weights."""

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest

from grm_ros.datasets.synthetic import SyntheticVideo, SynthParams
from grm_ros.evaluation import distractors
from grm_ros.evaluation.distractors import (
    SYNTH_PARAMS,
    Run,
    crossing_frames,
    dev_masks,
    distractor_set,
    on_distractor_frames,
    synthetic_masks,
    token_counts,
)
from grm_ros.tools.division_maps import LayerDivision, SearchRegion

SHORT = replace(SYNTH_PARAMS, length=40)


def _scripted_crossing() -> tuple[Run, np.ndarray, np.ndarray]:
    """Three frames over a 160-px region of 16 x 16 tokens (10 px each). Frame 1: the distractor (columns
    2-5, rows 3-6) overlaps the target (columns 5-8, rows 3-6) in column 5; block 1 selects columns 0-3
    (hard), block 2 a soft 0.6 on column 2 and 0.4 elsewhere. Frame 2: the two boxes apart."""
    region = SearchRegion(0, 0, 160)
    hard = np.zeros((16, 16))
    hard[:, :4] = 1
    soft = np.full((16, 16), 0.4)
    soft[:, 2] = 0.6
    layers = {1: LayerDivision(hard, np.full((16, 16), 0.7)), 2: LayerDivision(soft)}
    gt = np.array([[50, 30, 40, 40], [50, 30, 40, 40], [120, 120, 30, 30]], float)
    distractor = np.array([[0, 0, 5, 5], [20, 30, 40, 40], [0, 0, 30, 30]], float)
    run = Run(gt.copy(), [None, region, region], [{}, layers, layers])
    return run, gt, distractor


def test_counts_on_a_scripted_crossing():
    run, gt, distractor = _scripted_crossing()
    crossing = crossing_frames(gt, distractor)
    assert crossing.tolist() == [False, True, False]
    counts = token_counts(run, np.flatnonzero(crossing), synthetic_masks(gt, distractor))
    # Distractor only: columns 2-4 x 4 rows = 12 tokens; block 1 selects columns 2-3 of them = 8.
    assert counts[1]["distractor"] == {"interacting": 8, "tokens": 12, "share": 8 / 12,
                                       "p_interact": pytest.approx(0.7), "p_min": 0.7, "p_max": 0.7,
                                       "frames": 1}
    # Target only: columns 6-8 x 4 rows = 12 tokens, none selected.
    assert counts[1]["target"]["interacting"] == 0 and counts[1]["target"]["tokens"] == 12
    # The soft block counts values >= 0.5 (column 2: 4 tokens) and averages its raw values as p.
    assert counts[2]["distractor"]["interacting"] == 4
    assert counts[2]["distractor"]["p_interact"] == pytest.approx((4 * 0.6 + 8 * 0.4) / 12)
    assert (counts[2]["distractor"]["p_min"], counts[2]["distractor"]["p_max"]) == (0.4, 0.6)


def test_dev_counts_split_inside_and_outside_the_target():
    run, gt, _ = _scripted_crossing()
    counts = token_counts(run, [1, 2], dev_masks(gt))
    inside, outside = counts[1]["inside"], counts[1]["outside"]
    assert inside["frames"] == outside["frames"] == 2
    # Frame 1: target columns 5-8 x rows 3-6 (16 tokens, none in columns 0-3); frame 2: x, y 120..150,
    # columns and rows 12-14 (9 tokens). Block 1 selects 64 tokens per frame.
    assert inside["tokens"] == (16 + 9) / 2 and inside["interacting"] == 0
    assert outside["tokens"] == (240 + 247) / 2 and outside["interacting"] == 64
    assert outside["share"] == pytest.approx(128 / 487)


def test_on_distractor_frames_counts_from_the_first_crossing():
    gt = np.array([[0, 0, 10, 10]] * 4, float)
    distractor = np.array([[100, 100, 10, 10], [5, 0, 10, 10], [50, 50, 10, 10], [50, 50, 10, 10]], float)
    boxes = np.array([[50, 50, 10, 10], [0, 0, 10, 10], [50, 50, 10, 10], [1, 0, 10, 10]], float)
    crossing = crossing_frames(gt, distractor)
    assert crossing.tolist() == [False, True, False, False]
    assert on_distractor_frames(boxes, gt, distractor, crossing) == 1  # frame 2 only; frame 0 is before


def test_synthetic_set_is_deterministic_by_seed():
    first = distractor_set(2, seed=3, params=SHORT)
    again = distractor_set(2, seed=3, params=SHORT)
    other = distractor_set(2, seed=4, params=SHORT)
    assert [v.name for v, _ in first] == [v.name for v, _ in again]
    for (video, crossing), (video2, crossing2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(video.gt, video2.gt)
        np.testing.assert_array_equal(crossing.boxes, crossing2.boxes)
        k = int(np.flatnonzero(crossing_frames(video.gt, crossing.boxes))[0])
        np.testing.assert_array_equal(video.frame(k), video2.frame(k))
        # What the set promises: a look-alike in front of the visible target, partly hiding it.
        frames = crossing_frames(video.gt, crossing.boxes)
        assert crossing.role == "crossing" and crossing.in_front and video.visible[0]
        assert frames.sum() >= distractors.MIN_CROSSING_FRAMES
        assert video.visible_fraction[frames].min() <= distractors.MAX_VISIBLE_AT_CROSSING
    assert not np.array_equal(first[0][0].gt, other[0][0].gt)


def test_distractor_boxes_follow_the_layers():
    none = SynthParams(p_crossing_distractor=0.0, max_wandering_distractors=0)
    assert SyntheticVideo(0, 0, "heldout", none).distractors() == []
    video = SyntheticVideo(0, 0, "heldout", SynthParams(p_crossing_distractor=1.0))
    found = video.distractors()
    assert found[0].role == "crossing" and all(d.role == "wandering" for d in found[1:])
    crossing = found[0].boxes
    assert crossing.shape == (len(video), 4)
    ok = np.isfinite(crossing).all(axis=1)
    assert np.all(crossing[ok, 2:] > 0) and np.all(crossing[ok, :2] + crossing[ok, 2:] <= [640, 360])
    # It sweeps across the target once: the centre distance dips below the target's size.
    gap = np.hypot(*((crossing[:, :2] + crossing[:, 2:] / 2) - (video.gt[:, :2] + video.gt[:, 2:] / 2)).T)
    assert np.nanmin(gap) < np.nanmax(np.sqrt(video.gt[:, 2] * video.gt[:, 3]))


def test_command_end_to_end(tmp_path):
    out = tmp_path / "bench"
    code = distractors.main(["--variant", "small_cpu", "--allow-random", "--count", "1", "--length", "40",
                             "--dev", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "distractors.json").read_text())
    (row,) = report["sequences"]
    assert row["kind"] == "synthetic" and row["frames"] == 40 and 0 <= row["auc"] <= 1
    assert row["crossing_frames"] >= distractors.MIN_CROSSING_FRAMES
    for block in row["blocks"].values():
        for mask in ("distractor", "target"):
            assert block[mask]["frames"] == row["crossing_frames"]
            assert 0 <= block[mask]["interacting"] <= block[mask]["tokens"]
    table = (out / "distractors.md").read_text()
    assert row["name"] in table and "**mean**" in table
    figure = cv2.imread(str(out / "figures" / f"{row['name']}.png"))
    assert figure.shape[0] == 2 * 320 + 4 and figure.shape[1] > 4 * 320


def test_dev_part_on_jogging1(shared_data, tmp_path):
    root = shared_data("sot", "Jogging1").parent
    out = tmp_path / "bench"
    assert distractors.main(["--count", "0", "--dev", "Jogging1", "--root", str(root), "--max-frames", "6",
                             "--out", str(out)]) == 0
    (row,) = json.loads((out / "distractors.json").read_text())["sequences"]
    assert row["kind"] == "dev" and row["scored_frames"] == 5
    for block in row["blocks"].values():  # inside and outside the box together: the whole search grid
        assert block["inside"]["tokens"] + block["outside"]["tokens"] == 256
    assert (out / "figures" / "Jogging1.png").is_file()
