"""Crop-level augmentations for small-data training: blur, colour, occluders and look-alike distractors.

With a few thousand real frames a tracker learns the training videos instead of tracking. These change
what the search crop looks like in the ways real video does (defocus and motion blur, white balance,
something in front of the target, a similar object next to it) without changing where the target is,
so the box label stays exact. All take a numpy ``rng`` so that a sample stays a function of its index.
Boxes are (x, y, w, h) in crop pixels.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian (defocus) or linear motion blur, as fast targets and cheap lenses give."""
    if rng.random() < 0.5:
        return cv2.GaussianBlur(image, (0, 0), sigmaX=float(rng.uniform(0.6, 2.0)))
    length = int(rng.integers(3, 10))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    angle = float(rng.uniform(0, 180))
    rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle, 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    kernel /= max(float(kernel.sum()), 1e-6)
    return cv2.filter2D(image, -1, kernel)


def color(image: np.ndarray, rng: np.random.Generator, jitter: float = 0.15) -> np.ndarray:
    """Per-channel gains (white balance) and a contrast change around the mean."""
    gains = np.exp(rng.normal(0.0, jitter, 3)).astype(np.float32)
    contrast = float(np.exp(rng.normal(0.0, jitter)))
    x = image.astype(np.float32) * gains
    mean = x.mean(axis=(0, 1), keepdims=True)
    return np.clip((x - mean) * contrast + mean, 0, 255).astype(np.uint8)


def _clip_rect(x: float, y: float, w: float, h: float, side: int) -> tuple[int, int, int, int] | None:
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(side, round(x + w)), min(side, round(y + h))
    return (x0, y0, x1, y1) if x1 - x0 >= 2 and y1 - y0 >= 2 else None


def occlude(image: np.ndarray, box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cover 20-50 % of the target from one side with a patch of the same crop's background."""
    side = image.shape[0]
    x, y, w, h = box
    cover = rng.uniform(0.2, 0.5)
    edge = int(rng.integers(4))
    if edge == 0:
        rect = (x, y, w * cover, h)
    elif edge == 1:
        rect = (x + w * (1 - cover), y, w * cover, h)
    elif edge == 2:
        rect = (x, y, w, h * cover)
    else:
        rect = (x, y + h * (1 - cover), w, h * cover)
    clipped = _clip_rect(*rect, side)
    if clipped is None:
        return image
    x0, y0, x1, y1 = clipped
    pw, ph = x1 - x0, y1 - y0
    sx, sy = int(rng.integers(0, side - pw + 1)), int(rng.integers(0, side - ph + 1))
    out = image.copy()
    out[y0:y1, x0:x1] = image[sy : sy + ph, sx : sx + pw]
    return out


def paste_distractor(
    search: np.ndarray, box: np.ndarray, template: np.ndarray, template_box: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Paste the template's target, at the search crop's scale, beside the real one: a look-alike that
    only the relation to the template and the motion prior can tell apart (appendix A's failure case)."""
    side = search.shape[0]
    t = _clip_rect(*template_box, template.shape[0])
    if t is None:
        return search
    w, h = box[2:] * rng.uniform(0.8, 1.25)
    if w < 3 or h < 3 or w > side / 2 or h > side / 2:
        return search
    angle = rng.uniform(0, 2 * math.pi)
    distance = rng.uniform(1.2, 2.5) * max(w, h)
    cx = box[0] + box[2] / 2 + distance * math.cos(angle)
    cy = box[1] + box[3] / 2 + distance * math.sin(angle)
    pw, ph = round(w), round(h)
    px0, py0 = round(cx - pw / 2), round(cy - ph / 2)
    x0, y0, x1, y1 = max(0, px0), max(0, py0), min(side, px0 + pw), min(side, py0 + ph)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return search
    patch = cv2.resize(template[t[1] : t[3], t[0] : t[2]], (pw, ph))
    out = search.copy()
    out[y0:y1, x0:x1] = patch[y0 - py0 : y1 - py0, x0 - px0 : x1 - px0]
    return out
