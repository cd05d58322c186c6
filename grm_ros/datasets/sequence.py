"""The in-memory form of one tracking sequence, and the text/image parsing every layout shares.

Readers only parse annotations; frames stay on disk as paths so that listing a large benchmark
(LaSOT: 1400 sequences) costs nothing until a tracker actually reads a frame.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

_SEPARATORS = re.compile(r"[,\s;]+")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def shared_root() -> Path:
    """Shared read-only data (never copied into the repo): $GRM_SHARED, else `<repo>/../shared`."""
    env = os.environ.get("GRM_SHARED")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared"


@dataclass
class Sequence:
    """One target in one video: frame paths and per-frame ground truth.

    `gt` rows are x,y,w,h in pixels; a NaN row means the benchmark marks the target absent.
    `attributes` holds per-frame flags as bool arrays (e.g. "absent", "full_occlusion",
    "out_of_view", "cover") and scalars such as "gt_init_only" (only frame 1 annotated: test splits).
    """

    name: str
    frames: list[Path]
    gt: np.ndarray
    attributes: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.gt = np.asarray(self.gt, dtype=np.float64).reshape(-1, 4)
        if len(self.frames) != len(self.gt):
            raise ValueError(
                f"sequence {self.name!r}: {len(self.frames)} frames but {len(self.gt)} ground-truth rows"
            )

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def visible(self) -> np.ndarray:
        """Frames whose target is present: a finite, positive-size box and no absence flag."""
        ok = np.isfinite(self.gt).all(axis=1) & (self.gt[:, 2] > 0) & (self.gt[:, 3] > 0)
        absent = self.attributes.get("absent")
        if absent is not None:
            ok &= ~np.asarray(absent, dtype=bool)
        return ok

    def head(self, n: int) -> Sequence:
        """The first `n` frames (smoke runs); per-frame attributes are cut to match."""
        if n < 1:
            raise ValueError(f"head(n) needs n >= 1, got {n}")
        attrs = {
            k: (v[:n] if isinstance(v, np.ndarray) and v.shape[:1] == (len(self),) else v)
            for k, v in self.attributes.items()
        }
        return Sequence(self.name, self.frames[:n], self.gt[:n], attrs)

    def image_size(self) -> tuple[int, int]:
        """(width, height) of the first frame, for protocols that clip boxes to the image."""
        h, w = load_frame(self.frames[0]).shape[:2]
        return w, h


def load_frame(path: str | Path) -> np.ndarray:
    """Read an image as an RGB uint8 HxWx3 array (the colour order every grm_ros tracker expects)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _tokens(path: Path) -> list[tuple[int, list[str]]]:
    if not path.is_file():
        raise FileNotFoundError(f"missing annotation file {path}")
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        stripped = line.strip()
        if stripped:
            rows.append((lineno, [t for t in _SEPARATORS.split(stripped) if t]))
    return rows


def read_boxes(path: str | Path) -> np.ndarray:
    """Parse one x,y,w,h box per line (comma, tab or space separated; `nan` allowed) into Nx4.

    Raises ValueError naming the file and line of the first malformed row.
    """
    path = Path(path)
    boxes = []
    for lineno, toks in _tokens(path):
        if len(toks) != 4:
            raise ValueError(f"{path}:{lineno}: expected 4 numbers x,y,w,h, got {len(toks)}: {toks}")
        try:
            boxes.append([float(t) for t in toks])
        except ValueError:
            raise ValueError(f"{path}:{lineno}: not a number in {toks}") from None
        if any(math.isinf(v) for v in boxes[-1]):
            raise ValueError(f"{path}:{lineno}: infinite coordinate in {toks}")
    if not boxes:
        raise ValueError(f"{path}: no boxes")
    return np.array(boxes, dtype=np.float64)


def read_flags(path: str | Path, count: int | None = None) -> np.ndarray:
    """Parse per-frame 0/1 (or integer level) labels, one per line or comma-separated on one line.

    `count` checks the label count against the frame count, since a short label file would
    silently misalign every later frame.
    """
    path = Path(path)
    values = []
    for lineno, toks in _tokens(path):
        for t in toks:
            try:
                values.append(int(float(t)))
            except ValueError:
                raise ValueError(f"{path}:{lineno}: expected integer labels, got {t!r}") from None
    if count is not None and len(values) != count:
        raise ValueError(f"{path}: {len(values)} labels but the sequence has {count} frames")
    return np.array(values, dtype=np.int64)


def list_images(folder: str | Path) -> list[Path]:
    """Image files in frame order; numeric stems sort numerically (TrackingNet: 0.jpg, 1.jpg...)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"missing frame folder {folder}")
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise ValueError(f"no images in {folder}")

    def key(p: Path) -> tuple[int, int | str]:
        return (0, int(p.stem)) if p.stem.isdigit() else (1, p.stem)

    return sorted(files, key=key)
