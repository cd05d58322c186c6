"""One-pass evaluation (OPE): initialise on frame 1's GT box, track to the end, keep raw boxes.

Raw results use the format of published raw results: one `x,y,w,h` line per frame (frame 1 =
the initial box), `nan,nan,nan,nan` where the tracker reported a failure. Per-frame times go
next to them in `<seq>_time.txt` (seconds, line 1 = initialisation), as the GOT-10k toolkit does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from grm_ros.boxes import check_box
from grm_ros.datasets import Sequence, load_frame, read_boxes
from grm_ros.evaluation.metrics import valid_boxes


class OPETracker(Protocol):
    """What the harness drives. Frames are RGB uint8 HxWx3; boxes are x,y,w,h pixels.
    `track` returns None (or an invalid box) when the tracker reports a failure."""

    def initialize(self, frame_rgb: np.ndarray, box_xywh: tuple[float, float, float, float]) -> None: ...

    def track(self, frame_rgb: np.ndarray) -> tuple[float, float, float, float] | None: ...


TrackerFactory = Callable[[], OPETracker]


@dataclass
class OPEResult:
    """Raw output of one tracker on one sequence: boxes (N x 4, NaN rows = failure) and
    per-frame wall times in seconds (row 0 = initialisation), image loading excluded."""

    boxes: np.ndarray
    times: np.ndarray

    @property
    def failed(self) -> int:
        return int((~valid_boxes(self.boxes[1:])).sum())


def run_sequence(tracker: OPETracker, sequence: Sequence) -> OPEResult:
    """Run one tracker once over a sequence, initialised with GT row 1 (``check_box`` on frame 1)."""
    init = sequence.gt[0]
    boxes = np.full((len(sequence), 4), np.nan)
    times = np.zeros(len(sequence))
    boxes[0] = init
    for i, path in enumerate(sequence.frames):
        frame = load_frame(path)
        start = time.perf_counter()
        if i == 0:
            check_box(init, frame.shape[:2], f"sequence {sequence.name!r}: frame 1 ground-truth box")
            tracker.initialize(frame, tuple(float(v) for v in init))
            times[0] = time.perf_counter() - start
            continue
        box = tracker.track(frame)
        times[i] = time.perf_counter() - start
        if box is not None:
            boxes[i] = np.asarray(box, dtype=np.float64).reshape(4)
    return OPEResult(boxes, times)


def result_paths(results_dir: str | Path, tracker: str, sequence: str) -> tuple[Path, Path]:
    """results/<tracker>/<seq>.txt and its <seq>_time.txt."""
    folder = Path(results_dir) / tracker
    return folder / f"{sequence}.txt", folder / f"{sequence}_time.txt"


def write_result(results_dir: str | Path, tracker: str, sequence: str, result: OPEResult) -> Path:
    box_path, time_path = result_paths(results_dir, tracker, sequence)
    box_path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(box_path, result.boxes, fmt="%.4f", delimiter=",")
    np.savetxt(time_path, result.times, fmt="%.6f")
    return box_path


def read_result(results_dir: str | Path, tracker: str, sequence: str) -> OPEResult:
    """Raw boxes (any published one-box-per-line file) and times if a time file exists."""
    box_path, time_path = result_paths(results_dir, tracker, sequence)
    boxes = read_boxes(box_path)
    times = np.loadtxt(time_path, ndmin=1) if time_path.is_file() else np.full(len(boxes), np.nan)
    return OPEResult(boxes, times)


def run_ope(
    trackers: dict[str, TrackerFactory],
    sequences: Iterable[Sequence],
    results_dir: str | Path,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, OPEResult]]:
    """Run every tracker on every sequence (a fresh tracker per sequence: no state carries over)
    and write the raw results under results_dir/<tracker>/."""
    sequences = list(sequences)
    out: dict[str, dict[str, OPEResult]] = {}
    for name, factory in trackers.items():
        out[name] = {}
        for seq in sequences:
            result = run_sequence(factory(), seq)
            write_result(results_dir, name, seq.name, result)
            out[name][seq.name] = result
            tracked = result.times[1:].sum()
            fps = (len(seq) - 1) / tracked if tracked > 0 else float("nan")
            log(f"{name:>10s} {seq.name:<24s} {len(seq):5d} frames {fps:7.1f} fps {result.failed:4d} failed")
    return out
