"""Annotated frames for people: the ~/overlay topic and the demo video."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from grm_ros.tracking.state import TrackState
from grm_ros.tracking.tracker import TrackResult

COLORS = {TrackState.TRACKING: (40, 220, 40), TrackState.LOST: (255, 150, 0),
          TrackState.STOPPED: (160, 160, 160)}


def draw_box(image: np.ndarray, box: Sequence[float], color: tuple[int, int, int], text: str = "",
             thickness: int = 2) -> None:
    """Draw an (x, y, w, h) box and a caption on ``image`` in place."""
    x, y, w, h = (round(float(v)) for v in box)
    cv2.rectangle(image, (x, y), (x + w, y + h), color, thickness)
    if text:
        cv2.putText(image, text, (x, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv2.LINE_AA)


def draw_tracks(rgb: np.ndarray, results: Iterable[TrackResult]) -> np.ndarray:
    """A copy of ``rgb`` with every result's box, id, label, state and confidence."""
    canvas = np.array(rgb, dtype=np.uint8, copy=True)
    for r in results:
        caption = f"#{r.target_id} {r.label} {r.state.name.lower()} {r.confidence:.2f}".replace("  ", " ")
        draw_box(canvas, r.box, COLORS[r.state], caption)
    return canvas
