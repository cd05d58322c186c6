"""Calibrating the LOST state to one network's confidence scale, on real sequences with ground truth.

Every network's score-map peak has its own scale, so the thresholds of the TRACKING/LOST hysteresis are
chosen per variant (``tracker_defaults`` in its yaml). This records, once per sequence, the confidence and
the IoU of every frame with a fixed search region (so the trajectory does not depend on the state), then
replays the hysteresis offline for each candidate threshold pair and reports how many wrong boxes (target
absent or IoU < 0.1) it flags LOST and how many right ones (IoU >= 0.5) it flags by mistake.

    python -m grm_ros.evaluation.confidence --root ../shared/sot_train --root .cache/synth-train
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grm_ros.boxes import iou
from grm_ros.datasets import LAYOUTS, Sequence, list_sequences, load_frame, shared_root
from grm_ros.model.engine import EngineConfig
from grm_ros.tracking import ConfidenceHysteresis, HysteresisConfig, Tracker, TrackState, build_tracker

WRONG_IOU = 0.1
RIGHT_IOU = 0.5
MAX_FALSE_ALARMS = 0.20  # at most this share of right boxes may be flagged LOST


@dataclass(frozen=True)
class Trace:
    """Per tracked frame (the first one is the given box and is left out): confidence, wrong, right."""

    name: str
    confidence: np.ndarray
    wrong: np.ndarray
    right: np.ndarray


@dataclass(frozen=True)
class Rates:
    lost_threshold: float
    recover_threshold: float
    flagged: float  # share of wrong boxes published LOST
    false_alarms: float  # share of right boxes published LOST
    wrong_among_tracking: float  # share of TRACKING boxes that are wrong


def record(tracker: Tracker, sequence: Sequence, max_frames: int | None = None) -> Trace:
    """Track ``sequence`` from its first box and keep each frame's confidence and correctness."""
    frames = sequence.frames[:max_frames] if max_frames else sequence.frames
    tracker.stop_all()
    tracker.start(load_frame(frames[0]), tuple(sequence.gt[0]))
    confidence, boxes = [], []
    for path in frames[1:]:
        (result,) = tracker.update(load_frame(path))
        confidence.append(result.confidence)
        boxes.append(result.box)
    truth, visible = sequence.gt[1 : len(frames)], sequence.visible[1 : len(frames)]
    overlap = np.zeros(len(boxes))
    overlap[visible] = iou(np.asarray(boxes)[visible], truth[visible])
    return Trace(sequence.name, np.asarray(confidence), ~visible | (overlap < WRONG_IOU),
                 visible & (overlap >= RIGHT_IOU))


def replay(confidence: np.ndarray, config: HysteresisConfig) -> np.ndarray:
    """Whether each frame is published LOST under ``config``."""
    machine = ConfidenceHysteresis(config)
    return np.array([machine.update(float(c)) is TrackState.LOST for c in confidence], dtype=bool)


def rates(traces: list[Trace], config: HysteresisConfig) -> Rates:
    lost = np.concatenate([replay(t.confidence, config) for t in traces])
    wrong = np.concatenate([t.wrong for t in traces])
    right = np.concatenate([t.right for t in traces])

    def share(mask: np.ndarray, of: np.ndarray) -> float:
        return float(mask[of].mean()) if of.any() else 0.0

    return Rates(config.lost_threshold, config.recover_threshold, share(lost, wrong), share(lost, right),
                 share(wrong, ~lost))


def sweep(traces: list[Trace], lost_after: int = 5, recover_after: int = 2) -> list[Rates]:
    """Rates for a grid of (lost, recover) thresholds, recover at most 0.2 above lost."""
    grid = np.round(np.arange(0.05, 0.96, 0.05), 2)
    pairs = [(lo, hi) for lo, hi in itertools.product(grid, grid) if lo <= hi <= lo + 0.2]
    return [rates(traces, HysteresisConfig(float(lo), float(hi), lost_after, recover_after))
            for lo, hi in pairs]


def choose(table: list[Rates], max_false_alarms: float = MAX_FALSE_ALARMS) -> Rates:
    """The pair that flags the most wrong boxes while flagging at most ``max_false_alarms`` right ones
    (ties: the lower thresholds, which disturb a healthy track least)."""
    allowed = [r for r in table if r.false_alarms <= max_false_alarms] or table
    return max(allowed, key=lambda r: (r.flagged, -r.false_alarms, -r.lost_threshold, -r.recover_threshold))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m grm_ros.evaluation.confidence",
                                description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, action="append", default=None,
                   help="sequences, repeatable (default: $GRM_SHARED/sot_train)")
    p.add_argument("--layout", choices=sorted(LAYOUTS), default="uniform")
    p.add_argument("--variant", default=None)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--max-false-alarms", type=float, default=MAX_FALSE_ALARMS)
    args = p.parse_args(argv)
    roots = args.root or [shared_root() / "sot_train"]
    tracker = build_tracker(args.checkpoint, args.variant, EngineConfig(threads=1), lost_search_scale=1.0)
    sequences = [seq for root in roots for seq in list_sequences(root, args.layout)]
    traces = [record(tracker, seq, args.max_frames) for seq in sequences]
    wrong = sum(int(t.wrong.sum()) for t in traces)
    frames = sum(len(t.wrong) for t in traces)
    print(f"{len(traces)} sequences, {frames} tracked frames, {wrong} wrong boxes (IoU < {WRONG_IOU})")
    best = choose(sweep(traces), args.max_false_alarms)
    print(f"lost_threshold: {best.lost_threshold}\nrecover_threshold: {best.recover_threshold}")
    print(f"flags {best.flagged:.0%} of wrong boxes and {best.false_alarms:.0%} of right ones; "
          f"{best.wrong_among_tracking:.0%} of TRACKING boxes wrong")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
