"""Crop, normalise, window, decode and map-back geometry of the GRM tracker (FACTS §9-10).

This is the one implementation the tracker, the training sampler and the evaluation share. It has two crop
paths that agree by construction:

* ``sample_target`` -- the authors' CPU arithmetic (numpy + ``cv2.resize``), kept bit-for-bit so that
  released weights reproduce the paper's numbers;
* ``crop_batch_torch`` -- the same crop computed with torch on the model's device for many targets at once,
  without materialising the padded crop (one ``grid_sample`` straight from the frame).

The device path evaluates the same bilinear formula as ``cv2.resize(INTER_LINEAR)`` on the same integer
crop window; it differs only in arithmetic precision: OpenCV uses 11-bit fixed-point weights on uint8
input while torch interpolates in float32 (sampling positions too) and rounds to the uint8 grid. Pixel
values therefore differ by at most one grey level, on about a tenth of the pixels. (For an exact 2x
downscale cv2 switches to INTER_AREA, which averages the same 2x2 pixels that bilinear sampling does.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from grm_ros.boxes import check_box
from grm_ros.model.config import IMAGENET_MEAN, IMAGENET_STD
from grm_ros.model.head import cal_bbox

CLIP_MARGIN = 10
MIN_FRAME_SIDE = CLIP_MARGIN  # see check_frame_size


class FrameSizeError(ValueError):
    """A frame smaller than the tracker can clip boxes into (``check_frame_size``)."""


def check_frame_size(height: int, width: int) -> None:
    """Refuse a frame smaller than ``MIN_FRAME_SIDE`` on either side, with a FrameSizeError that says so.

    ``clip_box`` keeps a ``CLIP_MARGIN``-px box inside the frame only when the frame is at least that large;
    on a smaller one (1x1, 5x5) it would place the box partly off the image. Such a frame holds nothing to
    track, so the tracker refuses it instead of bending the clip rule.
    """
    if height < MIN_FRAME_SIDE or width < MIN_FRAME_SIDE:
        raise FrameSizeError(f"frame {width}x{height} is smaller than the tracker's minimum of "
                         f"{MIN_FRAME_SIDE}x{MIN_FRAME_SIDE} pixels (the box clip margin)")


def crop_size(box_wh: Sequence[float], factor: float) -> int:
    """Side of the square context crop: ``ceil(sqrt(w*h) * factor)`` (area-preserving, aspect-free)."""
    w, h = (float(v) for v in box_wh)
    if not (math.isfinite(w) and math.isfinite(h)) or w <= 0 or h <= 0:
        raise ValueError(f"crop_size: box size ({w}, {h}) must be finite and positive")
    size = math.ceil(math.sqrt(w * h) * factor)
    if size < 1:
        raise ValueError(f"crop_size: box ({w}, {h}) with factor {factor} gives an empty crop")
    return size


def crop_origin(box_xywh: Sequence[float], size: int) -> tuple[int, int]:
    """Top-left corner of the crop window centred on the box.

    Python's ``round`` (half-to-even) is kept on purpose: it is what the released weights were evaluated
    with, and ``crop_batch_torch`` uses the same rounding (``torch.round`` is half-to-even too).
    """
    x, y, w, h = (float(v) for v in box_xywh)
    return round(x + 0.5 * w - size * 0.5), round(y + 0.5 * h - size * 0.5)


def sample_target(
    image: np.ndarray, box_xywh: Sequence[float], factor: float, out_size: int
) -> tuple[np.ndarray, float]:
    """Authors' crop: a ``crop_size`` square around the box, zero-padded, resized with cv2 (bilinear).

    The authors pad the right/bottom by ``x2 - W + 1``: a crop reaching the last column replaces that column
    with padding, so the last image row and column never appear in any crop. That quirk is reproduced.
    A crop entirely outside the image is all zeros (the authors' slicing wraps around there instead; the
    tracker never asks for such a crop because its state is clipped to the frame).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"sample_target: expected an HxWx3 uint8 image, got {image.shape} {image.dtype}")
    box = check_box(box_xywh, what="sample_target box")
    size = crop_size(box[2:], factor)
    x1, y1 = crop_origin(box, size)
    height, width = image.shape[:2]
    # In-image part of the window; the exclusive end stops at W-1 / H-1 (the +1 padding quirk).
    cx0, cx1 = max(x1, 0), min(x1 + size, width - 1)
    cy0, cy1 = max(y1, 0), min(y1 + size, height - 1)
    padded = np.zeros((size, size, 3), dtype=np.uint8)
    if cx1 > cx0 and cy1 > cy0:
        padded[cy0 - y1 : cy1 - y1, cx0 - x1 : cx1 - x1] = image[cy0:cy1, cx0:cx1]
    crop = cv2.resize(padded, (out_size, out_size))
    return crop, out_size / size


def normalize_image(image: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """ImageNet normalisation of 0..255 pixels.

    numpy input is HxWx3 (channels last, as cv2 gives it) and stays numpy float32; tensor input is
    channels-first ``(..., 3, H, W)`` and keeps its device (float32 unless already floating point).
    """
    if isinstance(image, torch.Tensor):
        if image.dim() < 3 or image.shape[-3] != 3:
            raise ValueError(f"normalize_image: expected a (..., 3, H, W) tensor, got {tuple(image.shape)}")
        x = image.float() if not image.is_floating_point() else image
        mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return (x / 255.0 - mean) / std
    if image.ndim < 3 or image.shape[-1] != 3:
        raise ValueError(f"normalize_image: expected an HxWx3 array, got {image.shape}")
    x = image.astype(np.float32) / 255.0
    return (x - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)


def _sample_positions(start: torch.Tensor, size: torch.Tensor, out_size: int, extent: int) -> torch.Tensor:
    """Per box, where output pixel i samples the image along one axis, as a ``grid_sample`` coordinate.

    cv2's bilinear rule on the crop: ``s = (i + 0.5) * size / out - 0.5``, clamped into ``[0, size - 1]``
    (cv2 replicates the crop's own edge pixels rather than reading beyond the crop), then shifted to image
    pixels and normalised for ``align_corners=False`` over an image ``extent`` pixels long.
    """
    grid = torch.arange(out_size, dtype=torch.float64, device=start.device)
    src = (grid + 0.5) * (size[:, None] / out_size) - 0.5
    src = torch.minimum(src.clamp_min(0.0), size[:, None] - 1)
    return ((2 * (start[:, None] + src) + 1) / extent - 1).float()


def _to_device(host: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Small host tensors to the frame's device; through pinned memory on CUDA, because a copy from
    pageable memory would make the host wait for the GPU once per frame."""
    if device.type != "cuda" or host.device.type != "cpu":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)


def crop_batch_raw(
    frame: torch.Tensor, boxes: torch.Tensor, factor: float | torch.Tensor, out_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Device twin of ``sample_target`` for K boxes: K x 3 x S x S float crops in 0..255 and resize factors.

    One ``grid_sample`` over the frame instead of materialising each padded crop, so memory does not grow
    with the crop size and all boxes share one kernel. Zero padding of ``grid_sample`` is the authors'
    black padding; the frame's last row and column are cut off first, because the authors' ``+1`` padding
    never shows them. uint8 frames are rounded back to the uint8 grid, as cv2 does. ``factor`` may be
    one value or one per box (a lost target searches a wider region). Box arithmetic runs in float64 so
    that ``ceil`` and ``round`` see the same numbers as the CPU path.
    """
    if frame.dim() != 3 or frame.shape[0] != 3:
        raise ValueError(f"crop_batch_torch: expected a 3xHxW frame tensor, got {tuple(frame.shape)}")
    boxes = boxes.to(dtype=torch.float64).reshape(-1, 4)
    # Checked where the boxes live: the tracker passes host boxes, so this costs no device sync.
    if not bool(torch.isfinite(boxes).all()) or bool((boxes[:, 2:] <= 0).any()):
        raise ValueError(f"crop_batch_torch: boxes must be finite with positive size, got {boxes.tolist()}")
    boxes = _to_device(boxes, frame.device)
    x, y, w, h = boxes.unbind(1)
    factor = _to_device(torch.as_tensor(factor, dtype=torch.float64), frame.device)
    size = torch.ceil(torch.sqrt(w * h) * factor)
    count, height, width = len(boxes), frame.shape[1] - 1, frame.shape[2] - 1
    if height < 1 or width < 1:  # nothing of the image is ever visible
        return frame.new_zeros((count, 3, out_size, out_size), dtype=torch.float32), out_size / size
    px = _sample_positions(torch.round(x + 0.5 * w - 0.5 * size), size, out_size, width)
    py = _sample_positions(torch.round(y + 0.5 * h - 0.5 * size), size, out_size, height)
    grid = torch.stack([px[:, None, :].expand(-1, out_size, -1),
                        py[:, :, None].expand(-1, -1, out_size)], dim=-1)
    image = frame[None, :, :height, :width].float().expand(count, -1, -1, -1)
    crops = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if frame.dtype == torch.uint8:
        crops = crops.round()
    return crops, out_size / size


def crop_batch_torch(
    frame: torch.Tensor, boxes: torch.Tensor, factor: float | torch.Tensor, out_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised network input for K boxes on the frame's device: (K x 3 x S x S float32, K factors)."""
    crops, factors = crop_batch_raw(frame, boxes, factor, out_size)
    return normalize_image(crops), factors


def hann_window(size: int) -> torch.Tensor:
    """Cosine window ``0.5 (1 - cos(2 pi k / (F + 1)))``, k = 1..F, as a (1, 1, F, F) outer product.

    The constant ``2 pi / (F + 1)`` is formed first (in Python double) and then multiplied by k in float32,
    exactly as the authors compute it, so the window is bit-identical to theirs.
    """
    k = torch.arange(1, size + 1, dtype=torch.float32)
    h = 0.5 * (1 - torch.cos((2 * math.pi / (size + 1)) * k))
    return (h[:, None] * h[None, :]).view(1, 1, size, size)


def decode_maps(
    score_map: torch.Tensor, size_map: torch.Tensor, offset_map: torch.Tensor, window: torch.Tensor,
    penalty: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes (K x 4, cx cy w h in [0, 1] crop units) and confidences (K) from the head's maps.

    The box is read at the argmax of the *windowed* map, as the authors do, times ``penalty`` (K x 1 x F x
    F, see ``scale_change_penalty``) where given. The confidence is the peak of the *raw* map: the window
    and the penalty encode priors, not evidence, so applying them would make the same target look less
    certain just because it moved away from the crop centre.
    """
    score = score_map.float()
    prior = window.to(score.device) if penalty is None else window.to(score.device) * penalty.float()
    boxes = cal_bbox(score * prior, size_map.float(), offset_map.float())
    return boxes, score.flatten(1).amax(dim=1)


def _padded_scale(wh: torch.Tensor) -> torch.Tensor:
    """sqrt((w + p)(h + p)) with p = (w + h) / 2: the context-padded side Siamese trackers compare."""
    pad = 0.5 * (wh[..., 0] + wh[..., 1])
    return torch.sqrt((wh[..., 0] + pad) * (wh[..., 1] + pad))


def scale_change_penalty(wh: torch.Tensor, prior_wh: torch.Tensor, k: float) -> torch.Tensor:
    """exp(-k (r s - 1)), with s and r the changes (>= 1) of padded scale and of aspect ratio between a
    predicted size ``wh`` (..., 2) and the previous one ``prior_wh`` (broadcastable).

    Real targets change size slowly between frames; a peak whose size jumps is more often a distractor or
    a box swallowing background (the SiamRPN family's rule). ``k`` 0 gives 1 everywhere.
    """
    wh, prior_wh = wh.clamp_min(1e-6), prior_wh.clamp_min(1e-6)
    s = _padded_scale(wh) / _padded_scale(prior_wh)
    r = (wh[..., 0] / wh[..., 1]) / (prior_wh[..., 0] / prior_wh[..., 1])
    change = torch.maximum(s, 1 / s) * torch.maximum(r, 1 / r)
    return torch.exp(-(change - 1) * k)


def size_map_penalty(size_map: torch.Tensor, prior_wh: torch.Tensor, k: float) -> torch.Tensor:
    """``scale_change_penalty`` of every cell of a (K, 2, F, F) size map against (K, 2) previous sizes
    (both in crop units): a (K, 1, F, F) map for ``decode_maps``."""
    wh = size_map.float().permute(0, 2, 3, 1)
    prior = prior_wh.to(wh.device, torch.float32)[:, None, None, :]
    return scale_change_penalty(wh, prior, k).unsqueeze(1)


def map_box_back(
    pred_xywh_crop_px: np.ndarray | Sequence[float],
    prev_box_xywh: np.ndarray | Sequence[float],
    search_size: int,
    resize_factor: np.ndarray | float,
) -> np.ndarray:
    """Image-space (x, y, w, h) from a prediction in search-crop pixels given as (cx, cy, w, h).

    Like the authors, this assumes the crop is centred on the previous box centre, ignoring the up to
    half-pixel shift that rounding the crop origin introduced. Works on (4,) or (K, 4) arrays.
    """
    pred = np.asarray(pred_xywh_crop_px, dtype=np.float64) / np.asarray(resize_factor, np.float64)[..., None]
    prev = np.asarray(prev_box_xywh, dtype=np.float64)
    half = 0.5 * search_size / np.asarray(resize_factor, dtype=np.float64)
    cx = pred[..., 0] + prev[..., 0] + 0.5 * prev[..., 2] - half
    cy = pred[..., 1] + prev[..., 1] + 0.5 * prev[..., 3] - half
    w, h = pred[..., 2], pred[..., 3]
    return np.stack([cx - 0.5 * w, cy - 0.5 * h, w, h], axis=-1)


def clip_box(
    box_xywh: np.ndarray | Sequence[float], height: int, width: int, margin: int = CLIP_MARGIN
) -> np.ndarray:
    """Keep at least ``margin`` pixels of the box inside the frame and at least ``margin`` pixels of size.

    The authors' rule (their ``clip_box``): the right and bottom edges come from the *unclipped* left and
    top, so a box crossing the left or top border is cut there, not shifted inward. This is what stops a
    tracker state from leaving the image for good.
    """
    box = np.asarray(box_xywh, dtype=np.float64)
    x2, y2 = box[..., 0] + box[..., 2], box[..., 1] + box[..., 3]
    x1 = np.minimum(np.maximum(0.0, box[..., 0]), width - margin)
    x2 = np.minimum(np.maximum(float(margin), x2), width)
    y1 = np.minimum(np.maximum(0.0, box[..., 1]), height - margin)
    y2 = np.minimum(np.maximum(float(margin), y2), height)
    return np.stack([x1, y1, np.maximum(margin, x2 - x1), np.maximum(margin, y2 - y1)], axis=-1)


def smooth_size(pred_xywh: np.ndarray, prev_xywh: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """(K, 4) boxes at the predicted centres whose sizes move from the previous ones by ``rate`` (K,) of
    the way: one frame's size estimate is noisy, the centre is not, and a size that follows every noisy
    estimate balloons onto the background within a few frames."""
    rate = np.asarray(rate, dtype=np.float64)[:, None]
    centre = pred_xywh[:, :2] + pred_xywh[:, 2:] / 2
    size = prev_xywh[:, 2:] * (1 - rate) + pred_xywh[:, 2:] * rate
    return np.concatenate([centre - size / 2, size], axis=1)


def box_to_crop_coords(
    box_xywh: np.ndarray | Sequence[float],
    crop_center_box_xywh: np.ndarray | Sequence[float],
    factor: float,
    out_size: int,
) -> np.ndarray:
    """Box (x, y, w, h) in normalised [0, 1] coordinates of the crop taken around ``crop_center_box_xywh``.

    Exact inverse of ``map_box_back`` (crop centre at ``out_size / 2``), so a training target built with
    it is what the tracker decodes. (The authors' sampler puts the centre at ``(out_size - 1) / 2``, half
    a crop pixel away from where their tracker looks; here both sides use one convention.)
    """
    box = np.asarray(box_xywh, dtype=np.float64)
    ref = check_box(crop_center_box_xywh, what="box_to_crop_coords centre box")
    scale = out_size / crop_size(ref[2:], factor)
    cx = 0.5 * out_size + (box[..., 0] + 0.5 * box[..., 2] - ref[0] - 0.5 * ref[2]) * scale
    cy = 0.5 * out_size + (box[..., 1] + 0.5 * box[..., 3] - ref[1] - 0.5 * ref[3]) * scale
    w, h = box[..., 2] * scale, box[..., 3] * scale
    return np.stack([cx - 0.5 * w, cy - 0.5 * h, w, h], axis=-1) / out_size
