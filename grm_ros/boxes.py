"""Box arithmetic every layer shares (tracker, detection selection, evaluation, demo): numpy only.

Boxes are x, y, w, h in pixels. A row that is not a real box (non-finite, or without positive width and
height) overlaps nothing. ``check_box`` is the one rule for a box that comes from outside (a service call,
a detection, the library API, a command line).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# A side longer than this many frame diagonals is refused: its search crop (4-5x the box) would show the
# frame as a speck, and such a side is a unit or overflow error, not a target. It also keeps every number
# the tracker derives from the box (area, crop size, corners) far inside float32.
MAX_SIDE_DIAGONALS = 10


def check_box(box_xywh: Sequence[float] | np.ndarray, frame_hw: tuple[int, int] | None = None,
              what: str = "box") -> np.ndarray:
    """The box as 4 float64 numbers, or a ValueError that names ``what`` and the rule it breaks.

    The rule: 4 finite numbers; positive width and height; the corners, the size and the area finite and
    the area non-zero in float32 (what the network's side of the tracker computes in). With ``frame_hw``
    (height, width) also: no side above ``MAX_SIDE_DIAGONALS`` frame diagonals, and some overlap with the
    frame. Without it only the frame-free part applies (crops of training boxes may lie off the frame).
    """
    try:
        box = np.asarray(box_xywh, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what}: expected a box of 4 numbers (x, y, w, h), got {box_xywh!r}") from err
    if box.shape != (4,):
        raise ValueError(f"{what}: expected a box of 4 numbers (x, y, w, h), got {box_xywh!r}")
    if not np.all(np.isfinite(box)):
        raise ValueError(f"{what} {box.tolist()} contains a non-finite value (NaN or infinity)")
    x, y, w, h = box.tolist()
    if w <= 0 or h <= 0:
        raise ValueError(f"{what} {box.tolist()} must have positive width and height")
    if frame_hw is not None:
        height, width = frame_hw
        bound = MAX_SIDE_DIAGONALS * math.hypot(height, width)
        if max(w, h) > bound:
            raise ValueError(f"{what} {box.tolist()} has a side larger than {MAX_SIDE_DIAGONALS} frame "
                             f"diagonals ({bound:.0f} px for the {width}x{height} frame)")
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            raise ValueError(f"{what} {box.tolist()} lies entirely outside the {width}x{height} frame")
    with np.errstate(over="ignore", under="ignore"):
        derived = np.array([x, y, w, h, x + w, y + h, w * h]).astype(np.float32)
    if not np.all(np.isfinite(derived)):
        raise ValueError(f"{what} {box.tolist()} overflows float32 (corners, size or area)")
    if derived[6] == 0:
        raise ValueError(f"{what} {box.tolist()} is too small: its area is 0 in float32")
    return box


def valid_boxes(boxes: np.ndarray) -> np.ndarray:
    """Rows that are real boxes: finite with positive width and height."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)


def iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-row IoU of x,y,w,h boxes; 0 wherever either box is invalid."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    ok = valid_boxes(pred) & valid_boxes(gt)
    out = np.zeros(len(gt))
    p, g = pred[ok], gt[ok]
    iw = np.clip(np.minimum(p[:, 0] + p[:, 2], g[:, 0] + g[:, 2]) - np.maximum(p[:, 0], g[:, 0]), 0, None)
    ih = np.clip(np.minimum(p[:, 1] + p[:, 3], g[:, 1] + g[:, 3]) - np.maximum(p[:, 1], g[:, 1]), 0, None)
    inter = iw * ih
    out[ok] = inter / (p[:, 2] * p[:, 3] + g[:, 2] * g[:, 3] - inter)
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two single boxes."""
    return float(iou(a, b)[0])
