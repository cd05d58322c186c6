from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from grm_ros.datasets import read_uniform
from grm_ros.datasets.materials import asset_split, discover_material
from grm_ros.datasets.synthetic import SyntheticVideo, SynthParams, write_sequence


def test_same_seed_same_video_other_seed_other_video(procedural_train, small_params):
    a = SyntheticVideo(3, seed=5, params=small_params, material=procedural_train)
    b = SyntheticVideo(3, seed=5, params=small_params, material=procedural_train)
    c = SyntheticVideo(3, seed=6, params=small_params, material=procedural_train)
    np.testing.assert_array_equal(a.gt, b.gt)
    for k in (0, 17, 29):
        np.testing.assert_array_equal(a.frame(k), b.frame(k))
    assert not np.array_equal(a.gt, c.gt, equal_nan=True)
    assert a.frame(0).shape == (small_params.height, small_params.width, 3) and a.frame(0).dtype == np.uint8


def test_frames_render_independently_of_order(procedural_train, small_params):
    video = SyntheticVideo(1, seed=2, params=small_params, material=procedural_train)
    late_first = video.frame(20)
    video.frame(3)
    np.testing.assert_array_equal(
        late_first, SyntheticVideo(1, 2, params=small_params, material=procedural_train).frame(20)
    )


def test_train_and_heldout_material_are_disjoint():
    for procedural in (True, False):
        train = discover_material("train", procedural=procedural)
        heldout = discover_material("heldout", procedural=procedural)
        assert train.backgrounds and train.cutouts and heldout.backgrounds and heldout.cutouts
        assert not set(train.backgrounds) & set(heldout.backgrounds)
        assert not set(train.cutouts) & set(heldout.cutouts)
        assert all(asset_split(a) == "heldout" for a in heldout.backgrounds + heldout.cutouts)


def test_missing_packages_fall_back_to_procedural_material(tmp_path, small_params):
    material = discover_material("heldout", background_dirs=(tmp_path,), cutout_dirs=(tmp_path,))
    assert material.procedural
    video = SyntheticVideo(0, split="heldout", params=small_params, material=material)
    assert video.frame(0).std() > 5  # textured, not blank


def test_ground_truth_box_covers_every_changed_pixel(procedural_train, still_params):
    # Static camera and no effects: between two frames only the target moves, so every pixel that changes
    # lies in the union of its two boxes (1 px tolerance for bilinear edges).
    video = SyntheticVideo(4, seed=1, params=still_params, material=procedural_train)
    for a, b in ((0, 10), (5, 29)):
        diff = np.abs(video.frame(a).astype(int) - video.frame(b).astype(int)).max(axis=2) > 0
        assert diff.any()
        mask = np.zeros_like(diff)
        for box in (video.gt[a], video.gt[b]):
            x0, y0 = int(np.floor(box[0])) - 1, int(np.floor(box[1])) - 1
            x1, y1 = int(np.ceil(box[0] + box[2])) + 1, int(np.ceil(box[1] + box[3])) + 1
            mask[max(y0, 0) : y1, max(x0, 0) : x1] = True
        assert not (diff & ~mask).any()


def test_hidden_target_is_absent_and_boxes_stay_in_frame(procedural_train, small_params):
    params = replace(small_params, p_occluder=1.0, length=60)
    videos = [SyntheticVideo(i, seed=0, params=params, material=procedural_train) for i in range(12)]
    for video in videos:
        present = video.visible
        assert np.all(video.visible_fraction[~present] < params.absent_below)
        assert np.all(video.visible_fraction[present] >= params.absent_below)
        boxes = video.gt[present]
        assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 0] + boxes[:, 2] <= params.width + 1e-9)
        assert np.all(boxes[:, 1] + boxes[:, 3] <= params.height + 1e-9)
    occluded = np.concatenate([v.visible_fraction for v in videos])
    assert (occluded < 0.99).mean() > 0.05  # occluders really cover the target in some frames


def test_written_sequence_reads_back_in_the_uniform_layout(tmp_path: Path, small_params):
    material = discover_material("heldout", procedural=True)
    video = SyntheticVideo(
        0, seed=3, split="heldout", params=replace(small_params, length=8), material=material
    )
    seq = read_uniform(write_sequence(video, tmp_path))
    assert len(seq) == 8 and seq.frames[0].name == "00001.jpg"
    np.testing.assert_allclose(seq.gt, video.gt, atol=0.006)
    assert (tmp_path / video.name / "img" / "00008.jpg").is_file()


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="min_target"):
        SynthParams(min_target=50, max_target=10)
    with pytest.raises(ValueError, match="split"):
        SyntheticVideo(0, split="test")
