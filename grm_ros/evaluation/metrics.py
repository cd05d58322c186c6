"""OPE metrics: IoU, centre error, success/precision curves and the benchmarks' frame rules.

Conventions (reproduce ../shared/baselines/results_dev.tsv exactly; see test/evaluation):
- IoU on continuous boxes: [x, x+w) x [y, y+h). The OTB/LaSOT toolkits' "+1 pixel" formula
  (right = x+w-1, width = right-left+1) gives the same number; inflating areas to (w+1)(h+1)
  does not and misses the tsv by up to 0.026 AUC (tiny targets), so it is not used.
- Centre = (x + w/2, y + h/2). The toolkits' x + (w-1)/2 shifts both boxes equally, so the
  centre error is identical.
- Success at threshold t counts IoU > t (strict); precision at d counts error <= d.
- An invalid prediction (non-finite, or w <= 0 or h <= 0) is a failure: IoU 0, infinite
  error, unless the protocol holds the previous box (OTB toolkit).
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass, field

import numpy as np

from grm_ros.boxes import iou, valid_boxes

IOU_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PIXEL_THRESHOLDS = np.arange(0.0, 51.0)
NORM_THRESHOLDS = np.linspace(0.0, 0.5, 51)
PRECISION_PX = 20.0
NORM_PRECISION = 0.2


def clip_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Intersect x,y,w,h boxes with the image [0,W]x[0,H] (GOT-10k bounds both boxes)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x1 = np.clip(boxes[:, 0], 0, width)
    y1 = np.clip(boxes[:, 1], 0, height)
    x2 = np.clip(boxes[:, 0] + boxes[:, 2], 0, width)
    y2 = np.clip(boxes[:, 1] + boxes[:, 3], 0, height)
    return np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)


def center_error(pred: np.ndarray, gt: np.ndarray, normalized: bool = False) -> np.ndarray:
    """Per-row centre distance in pixels, or in units of the GT size (LaSOT's normalised
    precision); infinite wherever either box is invalid."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    ok = valid_boxes(pred) & valid_boxes(gt)
    out = np.full(len(gt), np.inf)
    diff = (pred[ok, :2] + pred[ok, 2:] / 2) - (gt[ok, :2] + gt[ok, 2:] / 2)
    if normalized:
        diff = diff / gt[ok, 2:]
    out[ok] = np.hypot(diff[:, 0], diff[:, 1])
    return out


def success_curve(ious: np.ndarray, thresholds: np.ndarray = IOU_THRESHOLDS) -> np.ndarray:
    """Fraction of frames with IoU > t for each t; NaN when no frame is scored."""
    ious = np.asarray(ious, dtype=np.float64)
    if ious.size == 0:
        return np.full(len(thresholds), np.nan)
    return (ious[:, None] > thresholds[None, :]).mean(axis=0)


def precision_curve(errors: np.ndarray, thresholds: np.ndarray = PIXEL_THRESHOLDS) -> np.ndarray:
    """Fraction of frames with centre error <= t for each t; NaN when no frame is scored."""
    errors = np.asarray(errors, dtype=np.float64)
    if errors.size == 0:
        return np.full(len(thresholds), np.nan)
    return (errors[:, None] <= thresholds[None, :]).mean(axis=0)


@dataclass(frozen=True)
class Protocol:
    """How a benchmark turns raw boxes into scored frames.

    first_frame: "gt" scores frame 1 with its GT box (OTB, LaSOT, the dev tsv); "skip" drops it (GOT-10k).
    failed: "zero" scores an invalid prediction as a miss; "hold" repeats the previous box (OTB toolkit).
    absent: "skip" leaves absent-target frames out; "miss" scores them as misses in every metric
        (LaSOT: all frames in the denominator); "otb" scores them as IoU misses but centre-error hits
        (the OTB/UAV123 toolkits give them overlap -1 and error -1).
    clip_to_image: bound both boxes by the image before IoU (GOT-10k).
    overall: "sequence" averages per-sequence figures (OTB, LaSOT, the tsv MEAN row);
        "frame" pools all scored frames (GOT-10k toolkit AO/SR).
    """

    name: str
    first_frame: str = "gt"
    failed: str = "zero"
    absent: str = "skip"
    clip_to_image: bool = False
    overall: str = "sequence"

    def __post_init__(self) -> None:
        choices = {
            "first_frame": ("gt", "skip"),
            "failed": ("zero", "hold"),
            "absent": ("skip", "miss", "otb"),
            "overall": ("sequence", "frame"),
        }
        for attr, allowed in choices.items():
            if getattr(self, attr) not in allowed:
                raise ValueError(f"Protocol {self.name!r}: {attr} must be one of {allowed}")


PROTOCOLS: dict[str, Protocol] = {
    "dev": Protocol("dev"),
    "otb": Protocol("otb", failed="hold", absent="otb"),
    "lasot": Protocol("lasot", failed="hold", absent="miss"),
    "got10k": Protocol("got10k", first_frame="skip", clip_to_image=True, overall="frame"),
}

# The protocol each dataset layout is scored with unless the user picks another one.
LAYOUT_PROTOCOL: dict[str, str] = {
    "uniform": "dev",
    "otb": "otb",
    "uav123": "otb",
    "trackingnet": "otb",
    "lasot": "lasot",
    "got10k": "got10k",
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose one of {sorted(PROTOCOLS)}")
    return PROTOCOLS[name]


@dataclass(frozen=True)
class Score:
    """Figures for one sequence (or the overall row). The per-frame arrays of the scored frames
    are kept so that the overall row can pool frames (GOT-10k) and curves can be plotted."""

    name: str
    frames: int
    scored: int
    auc: float
    p20: float
    np20: float
    miou: float
    sr50: float
    sr75: float
    failed: int
    fps: float
    ious: np.ndarray = field(repr=False)
    errors: np.ndarray = field(repr=False)
    norm_errors: np.ndarray = field(repr=False)
    success: np.ndarray = field(repr=False)
    precision: np.ndarray = field(repr=False)
    norm_precision: np.ndarray = field(repr=False)


def _score(
    name: str, frames: int, failed: int, fps: float, ious: np.ndarray, errors: np.ndarray, norm: np.ndarray
) -> Score:
    success = success_curve(ious)
    precision = precision_curve(errors)
    norm_precision = precision_curve(norm, NORM_THRESHOLDS)
    empty = ious.size == 0
    return Score(
        name=name,
        frames=frames,
        scored=int(ious.size),
        auc=float(success.mean()),
        p20=float("nan") if empty else float((errors <= PRECISION_PX).mean()),
        np20=float("nan") if empty else float((norm <= NORM_PRECISION).mean()),
        miou=float("nan") if empty else float(ious.mean()),
        sr50=float("nan") if empty else float((ious > 0.5).mean()),
        sr75=float("nan") if empty else float((ious > 0.75).mean()),
        failed=failed,
        fps=fps,
        ious=ious,
        errors=errors,
        norm_errors=norm,
        success=success,
        precision=precision,
        norm_precision=norm_precision,
    )


def fps_from_times(times: np.ndarray | None) -> float:
    """Tracking speed: updated frames / their total time (row 0 is the initialisation, excluded)."""
    if times is None or len(times) < 2:
        return float("nan")
    total = float(np.sum(times[1:]))
    return (len(times) - 1) / total if total > 0 else float("nan")


def score_sequence(
    name: str,
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    protocol: Protocol,
    image_size: tuple[int, int] | None = None,
    times: np.ndarray | None = None,
) -> Score:
    """Score one sequence's raw boxes against its GT under a benchmark protocol.

    `visible` marks frames whose target is present (Sequence.visible); `image_size` (W, H)
    is needed only by protocols that clip to the image.
    """
    pred = np.array(pred, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    visible = np.asarray(visible, dtype=bool)
    if not (len(pred) == len(gt) == len(visible)):
        raise ValueError(f"{name}: {len(pred)} predicted boxes for {len(gt)} ground-truth rows")
    ok = valid_boxes(pred)
    failed = int((~ok[1:]).sum())
    if protocol.failed == "hold":
        for i in np.flatnonzero(~ok):
            if i > 0:
                pred[i] = pred[i - 1]
    scored = np.ones(len(gt), dtype=bool)
    if protocol.first_frame == "gt":
        pred[0] = gt[0]
    else:
        scored[0] = False
    if protocol.clip_to_image:
        if image_size is None:
            raise ValueError(f"{name}: protocol {protocol.name!r} clips to the image and needs image_size")
        pred, gt = clip_boxes(pred, *image_size), clip_boxes(gt, *image_size)
    ious = iou(pred, gt)
    errors = center_error(pred, gt)
    norm = center_error(pred, gt, normalized=True)
    if protocol.absent == "skip":
        scored &= visible
    else:
        ious[~visible] = 0.0
        hit = 0.0 if protocol.absent == "otb" else np.inf
        errors[~visible] = hit
        norm[~visible] = hit
    return _score(name, len(gt), failed, fps_from_times(times), ious[scored], errors[scored], norm[scored])


def summarize(scores: Seq[Score], protocol: Protocol, name: str = "") -> Score:
    """The overall row: mean of per-sequence figures and curves, or pooled frames (GOT-10k)."""
    if not scores:
        raise ValueError("summarize needs at least one sequence score")
    name = name or f"MEAN({len(scores)})"
    frames = sum(s.frames for s in scores)
    failed = sum(s.failed for s in scores)
    fps = float(np.nanmean([s.fps for s in scores])) if any(np.isfinite(s.fps) for s in scores) else np.nan
    ious = np.concatenate([s.ious for s in scores])
    errors = np.concatenate([s.errors for s in scores])
    norm = np.concatenate([s.norm_errors for s in scores])
    if protocol.overall == "frame":
        return _score(name, frames, failed, fps, ious, errors, norm)
    rows = [s for s in scores if s.scored > 0]

    def mean(attr: str) -> np.ndarray:
        return np.mean([getattr(s, attr) for s in rows], axis=0) if rows else np.array(np.nan)

    return Score(
        name=name,
        frames=frames,
        scored=int(ious.size),
        auc=float(mean("auc")),
        p20=float(mean("p20")),
        np20=float(mean("np20")),
        miou=float(mean("miou")),
        sr50=float(mean("sr50")),
        sr75=float(mean("sr75")),
        failed=failed,
        fps=fps,
        ious=ious,
        errors=errors,
        norm_errors=norm,
        success=mean("success"),
        precision=mean("precision"),
        norm_precision=mean("norm_precision"),
    )
