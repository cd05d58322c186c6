"""End to end: the shipped default model follows held-out synthetic videos it never saw in training
(the set and the bars are explained in test/held_out_tracking.py)."""

from __future__ import annotations

import numpy as np

from grm_ros.model import DEFAULT_CHECKPOINT
from grm_ros.tracking import build_tracker

from held_out_tracking import VIDEOS, assert_tracks, follow, held_out_video, mean_ious


def test_default_model_tracks_held_out_videos():
    assert DEFAULT_CHECKPOINT.is_file(), "the default model must ship with the package"
    tracker = build_tracker()  # what a user gets: the packaged model and the default tracker settings
    scores = np.array([mean_ious(video, follow(tracker, video)) for video in map(held_out_video, VIDEOS)])
    tracked, static = scores.mean(axis=0)
    assert_tracks(tracked, static, "default model")
