"""The held-out set on which the end-to-end tests judge the shipped default model, and how they score it.

The set is fixed in advance (held-out split, seed 11, the first 16 videos of 100 frames) and averaged, so
the bars measure "tracks" rather than one lucky video. Measured on the 2-core CPU VM with the shipped model
(nanostem_256): mean IoU 0.648 (the first default model, small_cpu: 0.373); a box that never moves scores
0.142 on the same frames and random weights 0.026. The bars leave room for about three videos flipping
from followed (~0.7) to lost (~0.05) under another CPU's floating point, and still fail any model that
does not track. They were raised with the new default model (0.25 -> 0.45, margin 0.10 -> 0.25).
"""

from __future__ import annotations

import numpy as np

from grm_ros.boxes import iou
from grm_ros.datasets.synthetic import SyntheticVideo, SynthParams
from grm_ros.tracking import Tracker, TrackState

SEED = 11  # the tests' held-out seed; the demo (7) and the model card (0) use others
VIDEOS = range(16)
MIN_MEAN_IOU = 0.45
MIN_MARGIN_OVER_STATIC = 0.25
# The LOST flag, with the default model's thresholds (chosen on training data only). Measured here: 66 % of
# the wrong boxes are flagged, and 5.7 % of the frames published as TRACKING are wrong (bar raised from 25 %
# to 15 % with the new model).
WRONG_IOU = 0.1
MIN_WRONG_FLAGGED = 0.6
MAX_WRONG_AMONG_TRACKING = 0.15


def held_out_video(index: int) -> SyntheticVideo:
    return SyntheticVideo(index, seed=SEED, split="heldout", params=SynthParams(length=100))


def follow(tracker: Tracker, video: SyntheticVideo) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (x, y, w, h) for every frame, starting from the ground truth on frame 0, and whether each
    frame's box was published as TRACKING (the state a controller may act on)."""
    tracker.stop_all()
    tracker.start(video.frame(0), tuple(video.gt[0]))
    boxes, tracking = [video.gt[0]], [True]
    for k in range(1, len(video)):
        (result,) = tracker.update(video.frame(k))
        boxes.append(np.asarray(result.box))
        tracking.append(result.state is TrackState.TRACKING)
    return np.asarray(boxes), np.asarray(tracking)


def mean_ious(video: SyntheticVideo, boxes: np.ndarray) -> tuple[float, float]:
    """Mean IoU over the frames where the target is visible: of ``boxes``, and of the first box held still."""
    visible = video.visible
    truth = video.gt[visible]
    static = np.repeat(video.gt[:1], len(truth), axis=0)
    return float(np.mean(iou(boxes[visible], truth))), float(np.mean(iou(static, truth)))


def wrong_boxes(video: SyntheticVideo, boxes: np.ndarray) -> np.ndarray:
    """Frames whose box would mislead a controller: the target is absent, or the box misses it."""
    wrong = ~video.visible
    wrong[video.visible] = iou(boxes[video.visible], video.gt[video.visible]) < WRONG_IOU
    return wrong


def assert_tracks(tracked: float, static: float, who: str) -> None:
    assert tracked > MIN_MEAN_IOU, f"{who} mean IoU {tracked:.3f} (static box {static:.3f})"
    assert tracked > static + MIN_MARGIN_OVER_STATIC, \
        f"{who} mean IoU {tracked:.3f} vs static box {static:.3f}"
