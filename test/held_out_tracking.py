"""The held-out set on which the end-to-end tests judge the shipped default model, and how they score it.

The set is fixed in advance (held-out split, seed 11, the first 16 videos of 100 frames) and averaged, so
the bars measure "tracks" rather than one lucky video. Measured on the 2-core CPU VM with the shipped model:
mean IoU 0.379; a box that never moves scores 0.141 on the same frames and random weights 0.026. Tracking
here is all-or-nothing per video (a lost target is rarely re-found), so the bars leave room for about two
videos flipping from followed (~0.6) to lost (~0.05) under another CPU's floating point, and still fail
any model that does not track.
"""

from __future__ import annotations

import numpy as np

from grm_ros.boxes import iou
from grm_ros.tracking import Tracker
from grm_ros.training.synthetic import SyntheticVideo, SynthParams

SEED = 11  # the tests' held-out seed; the demo (7) and the model card (0) use others
VIDEOS = range(16)
MIN_MEAN_IOU = 0.25
MIN_MARGIN_OVER_STATIC = 0.10


def held_out_video(index: int) -> SyntheticVideo:
    return SyntheticVideo(index, seed=SEED, split="heldout", params=SynthParams(length=100))


def follow(tracker: Tracker, video: SyntheticVideo) -> np.ndarray:
    """Boxes (x, y, w, h) for every frame, starting from the ground truth on frame 0."""
    tracker.stop_all()
    tracker.start(video.frame(0), tuple(video.gt[0]))
    boxes = [video.gt[0]]
    for k in range(1, len(video)):
        (result,) = tracker.update(video.frame(k))
        boxes.append(np.asarray(result.box))
    return np.asarray(boxes)


def mean_ious(video: SyntheticVideo, boxes: np.ndarray) -> tuple[float, float]:
    """Mean IoU over the frames where the target is visible: of ``boxes``, and of the first box held still."""
    visible = video.visible
    truth = video.gt[visible]
    static = np.repeat(video.gt[:1], len(truth), axis=0)
    return float(np.mean(iou(boxes[visible], truth))), float(np.mean(iou(static, truth)))


def assert_tracks(tracked: float, static: float, who: str) -> None:
    assert tracked > MIN_MEAN_IOU, f"{who} mean IoU {tracked:.3f} (static box {static:.3f})"
    assert tracked > static + MIN_MARGIN_OVER_STATIC, \
        f"{who} mean IoU {tracked:.3f} vs static box {static:.3f}"
