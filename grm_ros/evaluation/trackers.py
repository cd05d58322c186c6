"""The trackers the harness knows by name: "grm" (grm_ros Tracker), "csrt", "nanotrack"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import numpy as np

from grm_ros.evaluation import comparators
from grm_ros.evaluation.ope import TrackerFactory

TRACKER_NAMES = ("grm", "csrt", "nanotrack")


class GRMAdapter:
    """OPE adapter around grm_ros.tracking.tracker.Tracker: one target, started on frame 1.

    The box is reported every frame, LOST included: OPE scores the best guess, and a LOST box
    is exactly that. Only a missing result (the target was dropped) counts as a failure.
    """

    def __init__(self, tracker: Any) -> None:
        self._tracker = tracker
        self._target: int | None = None

    def initialize(self, frame_rgb: np.ndarray, box_xywh: tuple[float, float, float, float]) -> None:
        self._tracker.stop_all()
        self._target = self._tracker.start(frame_rgb, box_xywh)

    def track(self, frame_rgb: np.ndarray) -> tuple[float, float, float, float] | None:
        if self._target is None:
            raise RuntimeError("track() called before initialize()")
        for result in self._tracker.update(frame_rgb):
            if result.target_id == self._target:
                return tuple(float(v) for v in result.box)
        return None


def grm_factory(
    checkpoint: str | None = None,
    variant: str | None = None,
    device: str = "cpu",
    dtype: str = "fp32",
    allow_random: bool = False,
    template_update: bool | None = None,
    config: Mapping[str, object] | None = None,
) -> TrackerFactory:
    """Build the network once and hand out adapters that restart it per sequence.

    template_update: None keeps the TrackerConfig default; True/False forces it on/off.
    config: further TrackerConfig field overrides (e.g. {"benchmark": "LASOT"}).
    """
    # Imported here so that evaluation (and its CSRT/NanoTrack runs) needs no torch model code.
    from grm_ros.model.engine import EngineConfig
    from grm_ros.tracking.tracker import TrackerConfig, build_tracker

    overrides: dict[str, object] = dict(config or {})
    known = {f.name for f in fields(TrackerConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown TrackerConfig field(s) {unknown}; known: {sorted(known)}")
    if template_update is not None:
        update = dict(overrides.pop("template_update", None) or {})
        update["enabled"] = template_update
        overrides["template_update"] = update
    tracker = build_tracker(checkpoint=checkpoint, variant=variant,
                            engine=EngineConfig(device=device, dtype=dtype),
                            allow_random=allow_random, **overrides)
    return lambda: GRMAdapter(tracker)


def make_factory(name: str, **grm_options: Any) -> TrackerFactory:
    """A factory of fresh OPE trackers for a harness name; grm_options go to grm_factory."""
    if name == "csrt":
        return comparators.csrt
    if name == "nanotrack":
        return comparators.nanotrack
    if name == "grm":
        return grm_factory(**grm_options)
    raise ValueError(f"unknown tracker {name!r}; choose from {TRACKER_NAMES}")
