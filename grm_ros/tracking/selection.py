"""Which detections become targets, and which lost targets a detection brings back.

A detector publishes every object it sees, on every frame; the tracker must decide which of them to
follow. This module is that decision as a pure function (targets + detections in, actions out), so the
ROS node only forwards messages and the rules can be tested on scripted inputs:

1. Detections are filtered: a box that passes ``grm_ros.boxes.check_box`` on the image (the rule every
   entrance shares), a finite score at or above ``min_score``, class in the allowed set (empty: any).
2. Re-acquisition (``reacquire``): each LOST target takes the detection that overlaps its last box best,
   if the IoU reaches ``min_iou`` and (with ``match_class``) the classes agree; a target or detection
   without a label matches any class. Pairs are assigned greedily by IoU, one detection per target.
3. A detection that overlaps any tracked target by ``min_iou`` or more is that target, not a new one.
4. Starts (``initialize``): under "all" every remaining detection starts a target, best score first,
   up to ``max_targets`` in total. The single-target policies start one target, and only while no
   target exists: "highest_score"; "nearest_center" (of the image, ties by score); "best_iou" with
   ``hint_box`` (a detection must overlap the hint at all to be chosen).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from grm_ros.boxes import box_iou, check_box
from grm_ros.tracking.state import TrackState

POLICIES = ("highest_score", "nearest_center", "best_iou", "all")

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Detection:
    """One detector output: box (x, y, w, h) in pixels, class label and score."""

    box: Box
    label: str = ""
    score: float = 1.0

    def usable_in(self, width: int, height: int) -> bool:
        """A box that ``check_box`` accepts on a ``width`` x ``height`` image, and a finite score."""
        try:
            check_box(self.box, (height, width))
        except ValueError:
            return False
        return math.isfinite(self.score)


@dataclass(frozen=True)
class SelectionConfig:
    """The rules above; see the module docstring for what each field means."""

    policy: str = "highest_score"
    classes: tuple[str, ...] = ()
    min_score: float = 0.5
    hint_box: Box | None = None
    initialize: bool = True
    reacquire: bool = True
    min_iou: float = 0.3
    match_class: bool = True
    max_targets: int = 8

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"selection policy must be one of {POLICIES}, got {self.policy!r}")
        for name in ("min_score", "min_iou"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
                raise ValueError(f"SelectionConfig.{name} must be in [0, 1], got {value!r}")
        if not isinstance(self.max_targets, int) or self.max_targets < 1:
            raise ValueError(f"SelectionConfig.max_targets must be an integer >= 1, got {self.max_targets!r}")
        if self.hint_box is not None:
            hint = tuple(float(v) for v in self.hint_box)
            if len(hint) != 4 or not all(math.isfinite(v) for v in hint) or hint[2] <= 0 or hint[3] <= 0:
                raise ValueError(f"hint box must be 4 finite numbers x, y, w, h with w, h > 0, "
                                 f"got {self.hint_box!r}")
            object.__setattr__(self, "hint_box", hint)
        if self.policy == "best_iou" and self.hint_box is None:
            raise ValueError("selection policy 'best_iou' needs a hint box (x, y, w, h with w, h > 0)")
        object.__setattr__(self, "classes", tuple(self.classes))


class TargetLike(Protocol):
    """What the rules need to know about a tracked target (a ``TrackResult`` or a tracker ``Target``)."""

    target_id: int
    label: str

    @property
    def box(self) -> Sequence[float] | np.ndarray: ...

    @property
    def state(self) -> TrackState: ...


@dataclass(frozen=True)
class Start:
    """Start a new target on this detection."""

    detection: Detection


@dataclass(frozen=True)
class Reacquire:
    """Re-initialise the (lost) target ``target_id`` on this detection, keeping its id."""

    target_id: int
    detection: Detection


def usable_detections(detections: Iterable[Detection], config: SelectionConfig, width: int,
                      height: int) -> list[Detection]:
    """Step 1: the detections that pass the geometry, class and score filters."""
    allowed = set(config.classes)
    return [d for d in detections
            if d.usable_in(width, height) and d.score >= config.min_score
            and (not allowed or d.label in allowed)]


def _classes_agree(target_label: str, detection_label: str) -> bool:
    return not target_label or not detection_label or target_label == detection_label


def _ranked_for_start(candidates: list[Detection], config: SelectionConfig, width: int,
                      height: int) -> list[Detection]:
    """Candidates in the order the policy prefers them (best first); ones it would never pick are left out."""
    by_score = sorted(candidates, key=lambda d: -d.score)
    if config.policy in ("highest_score", "all"):
        return by_score
    if config.policy == "nearest_center":
        cx, cy = width / 2, height / 2
        return sorted(by_score, key=lambda d: math.hypot(d.box[0] + d.box[2] / 2 - cx,
                                                         d.box[1] + d.box[3] / 2 - cy))
    hint = np.asarray(config.hint_box)
    overlaps = [(box_iou(np.asarray(d.box), hint), d) for d in by_score]
    return [d for iou, d in sorted(overlaps, key=lambda p: -p[0]) if iou > 0]


def plan(targets: Sequence[TargetLike], detections: Iterable[Detection], config: SelectionConfig,
         width: int, height: int) -> list[Start | Reacquire]:
    """What to do with one detection message, given the tracked targets and the image size."""
    remaining = usable_detections(detections, config, width, height)
    actions: list[Start | Reacquire] = []

    if config.reacquire:
        lost = [t for t in targets if t.state is TrackState.LOST]
        pairs = sorted(
            ((box_iou(np.asarray(t.box, dtype=float), np.asarray(d.box)), i, j)
             for i, t in enumerate(lost) for j, d in enumerate(remaining)
             if not config.match_class or _classes_agree(t.label, d.label)),
            key=lambda p: -p[0])
        taken_targets: set[int] = set()
        taken_detections: set[int] = set()
        for iou, i, j in pairs:
            if iou < config.min_iou or i in taken_targets or j in taken_detections:
                continue
            taken_targets.add(i)
            taken_detections.add(j)
            actions.append(Reacquire(lost[i].target_id, remaining[j]))
        remaining = [d for j, d in enumerate(remaining) if j not in taken_detections]

    remaining = [d for d in remaining
                 if all(box_iou(np.asarray(t.box, dtype=float), np.asarray(d.box)) < config.min_iou
                        for t in targets)]
    if not config.initialize:
        return actions
    ranked = _ranked_for_start(remaining, config, width, height)
    if config.policy == "all":
        room = max(0, config.max_targets - len(targets))
        actions.extend(Start(d) for d in ranked[:room])
    elif not targets and ranked:
        actions.append(Start(ranked[0]))
    return actions
