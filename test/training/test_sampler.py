from dataclasses import replace

import numpy as np
import pytest
import torch

from grm_ros.datasets import Sequence, read_uniform
from grm_ros.datasets.synthetic import SyntheticVideo, write_sequence
from grm_ros.tracking.geometry import crop_size
from grm_ros.training.sampler import (
    PairDataset,
    SequenceSource,
    StepIndices,
    SyntheticSource,
    jitter_box,
    sample_frame_pair,
)


def test_frame_pairs_are_causal_and_within_the_interval():
    rng = np.random.default_rng(0)
    visible = np.ones(500, bool)
    for _ in range(200):
        t, s = sample_frame_pair(visible, 20, rng)
        assert 0 < s - t <= 20


def test_frame_pair_window_widens_past_absent_frames():
    visible = np.zeros(100, bool)
    visible[[3, 40]] = True  # 37 frames apart, interval 10: window grows by 5 until it reaches frame 40
    assert sample_frame_pair(visible, 10, np.random.default_rng(1)) == (3, 40)


def test_no_pair_without_two_visible_frames():
    assert sample_frame_pair(np.array([False, True, False]), 10, np.random.default_rng(0)) is None


def test_jitter_keeps_the_box_without_jitter_and_moves_it_with():
    box = np.array([10.0, 20.0, 30.0, 40.0])
    np.testing.assert_allclose(jitter_box(box, 0.0, 0.0, np.random.default_rng(0)), box)
    moved = np.array([jitter_box(box, 3.0, 0.25, np.random.default_rng(i)) for i in range(200)])
    centers = moved[:, :2] + moved[:, 2:] / 2
    assert np.abs(centers - [25.0, 40.0]).max() > 10
    assert np.all(np.abs(centers - [25.0, 40.0]) <= 1.5 * np.sqrt(moved[:, 2:3] * moved[:, 3:4]) + 1e-9)


def test_samples_are_a_pure_function_of_seed_and_index(small_source, tiny_sampler):
    a = PairDataset([small_source], tiny_sampler, seed=3)
    b = PairDataset([small_source], tiny_sampler, seed=3)
    for index in (0, 7, 1234):
        x, y = a[index], b[index]
        for key in x:
            assert torch.equal(x[key], y[key]), key
    assert not torch.equal(a[0]["search"], a[1]["search"])
    assert not torch.equal(a[0]["search"], PairDataset([small_source], tiny_sampler, seed=4)[0]["search"])


def test_sample_shapes_and_target_inside_the_search_crop(small_source, tiny_sampler):
    ds = PairDataset([small_source], tiny_sampler, seed=0)
    for index in range(20):
        item = ds[index]
        assert item["template"].shape == (3, 32, 32) and item["search"].shape == (3, 64, 64)
        assert item["template"].dtype == torch.float32
        cx, cy = (item["search_box"][:2] + item["search_box"][2:] / 2).tolist()
        assert 0 <= cx <= 1 and 0 <= cy <= 1  # centre jitter 3 stays within the 4x search area


def test_unjittered_target_sits_in_the_crop_centre(tmp_path, procedural_train, small_params, tiny_sampler):
    video = SyntheticVideo(2, seed=0, params=replace(small_params, length=5), material=procedural_train)
    seq = read_uniform(write_sequence(video, tmp_path))
    still = replace(tiny_sampler, center_jitter=0.0, scale_jitter=0.0, p_flip=0.0, p_grayscale=0.0)
    item = PairDataset([SequenceSource("disk", [seq])], still, seed=0)[0]
    box = item["search_box"].numpy()
    np.testing.assert_allclose(box[:2] + box[2:] / 2, [0.5, 0.5], atol=1e-6)
    t_box = item["template_box"].numpy()
    np.testing.assert_allclose(t_box[:2] + t_box[2:] / 2, [0.5, 0.5], atol=1e-6)
    # with no scale jitter the search crop is 4 x sqrt(w h) around the box: w / crop in normalised units
    visible = seq.gt[np.isfinite(seq.gt).all(axis=1)]
    widths = visible[:, 2] / [crop_size(b[2:], 4.0) for b in visible]
    assert np.isclose(widths, box[2], atol=1e-6).any()


def test_image_datasets_use_one_frame_for_both_crops(tmp_path, procedural_train, small_params, tiny_sampler):
    video = next(
        v
        for v in (
            SyntheticVideo(i, seed=1, params=replace(small_params, length=2), material=procedural_train)
            for i in range(50)
        )
        if v.visible[0]
    )
    image = read_uniform(write_sequence(video, tmp_path)).head(1)
    still = replace(tiny_sampler, center_jitter=0.0, scale_jitter=0.0, p_flip=0.0, p_grayscale=0.0)
    item = PairDataset([SequenceSource("images", [image], is_video=False)], still, seed=0)[0]
    box = image.gt[0]
    # same frame, same box: both crops show it centred, scaled by their own crop sizes
    t_w, s_w = item["template_box"][2].item(), item["search_box"][2].item()
    assert t_w * crop_size(box[2:], 2.0) == pytest.approx(box[2], rel=1e-5)
    assert s_w * crop_size(box[2:], 4.0) == pytest.approx(box[2], rel=1e-5)
    np.testing.assert_allclose(item["search_box"][:2] + item["search_box"][2:] / 2, [0.5, 0.5], atol=1e-6)


def test_sources_are_drawn_by_weight(tiny_sampler, procedural_train, small_params):
    one = SyntheticSource(count=2, seed=8, params=small_params, material=procedural_train, weight=1.0)
    three = SyntheticSource(count=2, seed=9, params=small_params, material=procedural_train, weight=3.0)
    ds = PairDataset([one, three], tiny_sampler, seed=0)
    drawn = np.array([ds[i]["source"].item() for i in range(120)])
    assert 0.6 < drawn.mean() < 0.9  # expected 0.75


def test_step_indices_are_disjoint_across_ranks_and_resume_exactly():
    def take(sampler, n):
        it = iter(sampler)
        return [next(it) for _ in range(n)]

    rank0, rank1 = take(StepIndices(4, 0, 0, 2), 12), take(StepIndices(4, 0, 1, 2), 12)
    assert not set(rank0) & set(rank1)
    assert sorted(rank0 + rank1) == list(range(24))
    assert take(StepIndices(4, 2, 0, 2), 4) == rank0[8:12]


def test_source_without_sequences_or_with_bad_weight_is_rejected():
    with pytest.raises(ValueError, match="no sequences"):
        SequenceSource("empty", [])
    seq = Sequence("s", [], np.zeros((0, 4)))
    with pytest.raises(ValueError, match="weight"):
        SequenceSource("w", [seq], weight=0.0)
