"""Target state and the confidence hysteresis that decides when a target counts as lost.

Hysteresis (two thresholds plus frame counts) keeps a single noisy score from flipping the state a
controller acts on: a target is declared lost only after several weak frames in a row, and recovers only
after the confidence clearly rises again.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class TrackState(enum.IntEnum):
    """What a result's box means to a consumer. 0 is reserved (UNKNOWN / initialising)."""

    TRACKING = 1
    LOST = 2
    STOPPED = 3


@dataclass(frozen=True)
class HysteresisConfig:
    """Thresholds on the confidence (the raw score-map peak, 0..1).

    lost_threshold: a frame below it counts as weak; lost_after consecutive weak frames -> LOST.
    recover_threshold: a LOST target needs recover_after consecutive frames at or above it -> TRACKING.
    """

    lost_threshold: float = 0.25
    recover_threshold: float = 0.45
    lost_after: int = 5
    recover_after: int = 2

    def __post_init__(self) -> None:
        for name in ("lost_threshold", "recover_threshold"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"HysteresisConfig.{name} must be in [0, 1], got {value!r}")
        if self.recover_threshold < self.lost_threshold:
            raise ValueError(
                f"HysteresisConfig: recover_threshold {self.recover_threshold} must be >= lost_threshold "
                f"{self.lost_threshold} (otherwise the state could flap)"
            )
        for name in ("lost_after", "recover_after"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"HysteresisConfig.{name} must be an integer >= 1, got {value!r}")


class ConfidenceHysteresis:
    """TRACKING <-> LOST state machine driven by one confidence per frame; STOPPED is terminal."""

    def __init__(self, config: HysteresisConfig | None = None) -> None:
        self.config = config or HysteresisConfig()
        self.state = TrackState.TRACKING
        self._streak = 0  # consecutive frames pushing towards the other state

    def update(self, confidence: float) -> TrackState:
        if self.state is TrackState.STOPPED:
            return self.state
        cfg = self.config
        if self.state is TrackState.TRACKING:
            self._streak = self._streak + 1 if confidence < cfg.lost_threshold else 0
            if self._streak >= cfg.lost_after:
                self.state, self._streak = TrackState.LOST, 0
        else:
            self._streak = self._streak + 1 if confidence >= cfg.recover_threshold else 0
            if self._streak >= cfg.recover_after:
                self.state, self._streak = TrackState.TRACKING, 0
        return self.state

    def stop(self) -> None:
        self.state, self._streak = TrackState.STOPPED, 0
