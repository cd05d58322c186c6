"""End to end: the shipped default model follows held-out synthetic videos it never saw in training, and
flags the frames where it does not (the set and the bars are explained in test/held_out_tracking.py)."""

from __future__ import annotations

import numpy as np

from grm_ros.model import DEFAULT_CHECKPOINT
from grm_ros.tracking import build_tracker

from held_out_tracking import (
    MAX_WRONG_AMONG_TRACKING,
    MIN_WRONG_FLAGGED,
    VIDEOS,
    assert_tracks,
    follow,
    held_out_video,
    mean_ious,
    wrong_boxes,
)


def test_default_model_tracks_held_out_videos_and_flags_its_misses():
    assert DEFAULT_CHECKPOINT.is_file(), "the default model must ship with the package"
    tracker = build_tracker()  # what a user gets: the packaged model and the default tracker settings
    scores, wrong, tracking = [], [], []
    for video in map(held_out_video, VIDEOS):
        boxes, published_tracking = follow(tracker, video)
        scores.append(mean_ious(video, boxes))
        wrong.append(wrong_boxes(video, boxes)[1:])  # frame 0 is the given box
        tracking.append(published_tracking[1:])
    tracked, static = np.mean(scores, axis=0)
    assert_tracks(tracked, static, "default model")

    wrong, tracking = np.concatenate(wrong), np.concatenate(tracking)
    flagged = float(np.mean(~tracking[wrong]))
    misleading = float(np.mean(wrong[tracking]))
    assert flagged >= MIN_WRONG_FLAGGED, f"only {flagged:.0%} of the wrong boxes were flagged LOST"
    assert misleading <= MAX_WRONG_AMONG_TRACKING, f"{misleading:.0%} of the TRACKING boxes were wrong"
