"""OpenCV comparators run by the same harness: CSRT and NanoTrack v2 (cv2.TrackerNano).

Conventions that reproduce ../shared/baselines/results_dev.tsv (NanoTrack: all 8 dev sequences
to 4 decimals): frames are handed to OpenCV as BGR (the harness loads RGB, so it is converted
back; feeding RGB moves NanoTrack by up to 0.017 AUC), and the float GT box is rounded with
Python's round() to the integer Rect that init takes (truncation moves bag by 0.0065).
CSRT is numerically chaotic: its result depends on the CPU code path of Intel IPP (David:
0.7449 with AVX-512, 0.7521 with AVX2, 0.5833 with IPP off), so it matches the tsv on 5 of 8
sequences exactly and within 0.02 AUC on the others.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from grm_ros.datasets import shared_root


def nanotrack_dir() -> Path:
    return shared_root() / "baselines" / "nanotrack"


class OpenCVTracker:
    """OPE adapter for a cv2.Tracker: RGB in, BGR to OpenCV, None on a reported failure."""

    def __init__(self, create: Callable[[], cv2.Tracker]) -> None:
        self._create = create
        self._tracker: cv2.Tracker | None = None

    def initialize(self, frame_rgb: np.ndarray, box_xywh: tuple[float, float, float, float]) -> None:
        self._tracker = self._create()
        rect = tuple(round(v) for v in box_xywh)
        self._tracker.init(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR), rect)

    def track(self, frame_rgb: np.ndarray) -> tuple[float, float, float, float] | None:
        if self._tracker is None:
            raise RuntimeError("track() called before initialize()")
        ok, rect = self._tracker.update(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))
        return tuple(float(v) for v in rect) if ok else None


def csrt() -> OpenCVTracker:
    return OpenCVTracker(cv2.TrackerCSRT_create)


def nanotrack(model_dir: str | Path | None = None) -> OpenCVTracker:
    """NanoTrack v2 from backbone.onnx + head.onnx (default: ../shared/baselines/nanotrack)."""
    folder = Path(model_dir) if model_dir is not None else nanotrack_dir()
    backbone, head = folder / "backbone.onnx", folder / "head.onnx"
    for path in (backbone, head):
        if not path.is_file():
            raise FileNotFoundError(f"NanoTrack model file {path} not found (set GRM_SHARED)")

    def create() -> cv2.Tracker:
        params = cv2.TrackerNano_Params()
        params.backbone = str(backbone)
        params.neckhead = str(head)
        return cv2.TrackerNano_create(params)

    return OpenCVTracker(create)
