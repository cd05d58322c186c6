"""Box arithmetic every layer shares (tracker, detection selection, evaluation, demo): numpy only.

Boxes are x, y, w, h in pixels. A row that is not a real box (non-finite, or without positive width and
height) overlaps nothing.
"""

from __future__ import annotations

import numpy as np


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
