"""When to refresh a target's template, and when to take a refresh back.

The GRM authors keep the first-frame template for the whole sequence; their appendix shows the failure
that invites an update (a distractor partly occludes the target and the box drifts) and the risk of one
(the refreshed template learns the distractor). This policy refreshes only from frames that are both
confident and geometrically stable, keeps the first template as an anchor, and returns to the anchor
when the refreshed template does worse than the frames that justified it. It is pure logic (numbers in,
an action out) so that it can be tested on scripted inputs; the tracker does the cropping.

Two ways to use a refresh (``mode``): "replace" swaps the template (the anchor comes back on a revert);
"dual" keeps the anchor in every forward and adds the refreshed crop as a second, dynamic template, the
temporal cue the appendix suggests: the tracker runs both against the same search crop and averages their
maps, so a refresh can only add evidence, and a revert drops the dynamic template.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from grm_ros.boxes import box_iou

TEMPLATE_MODES = ("replace", "dual")
TEMPLATE_SWITCHES = ("off", *TEMPLATE_MODES)  # how benchmarks name a run: off, or on in a mode


class TemplateAction(enum.Enum):
    KEEP = "keep"
    REFRESH = "refresh"  # crop a new template from this frame at this box
    REVERT = "revert"  # go back to the anchor (first) template


@dataclass(frozen=True)
class TemplateUpdateConfig:
    """Off by default: the evaluation has to show that it helps before a deployment turns it on.

    min_confidence / min_iou: a frame is "good" if its confidence reaches min_confidence and its box
    overlaps the previous box by at least min_iou (no jump, no sudden change of shape). min_confidence
    None takes the network's calibrated recover threshold (the confidence of a healthy track for this
    variant; peak scales differ between networks, so a fixed 0.7 never opened for some).
    stable_frames: consecutive good frames needed before a refresh; interval: frames between refreshes.
    probation: frames a refreshed template is watched; it is reverted if the target is lost meanwhile or
    if its mean confidence falls below the mean of the good frames that triggered it minus revert_margin.
    """

    enabled: bool = False
    mode: str = "replace"
    min_confidence: float | None = None
    min_iou: float = 0.7
    stable_frames: int = 5
    interval: int = 25
    probation: int = 10
    revert_margin: float = 0.1

    def __post_init__(self) -> None:
        if self.mode not in TEMPLATE_MODES:
            raise ValueError(f"TemplateUpdateConfig.mode must be one of {TEMPLATE_MODES}, got {self.mode!r}")
        for name in ("min_confidence", "min_iou", "revert_margin"):
            value = getattr(self, name)
            if value is None and name == "min_confidence":
                continue
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"TemplateUpdateConfig.{name} must be in [0, 1], got {value!r}")
        for name in ("stable_frames", "interval", "probation"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TemplateUpdateConfig.{name} must be an integer >= 1, got {value!r}")

    @classmethod
    def switch(cls, setting: str) -> TemplateUpdateConfig:
        """The defaults, off or on in a mode: one of ``TEMPLATE_SWITCHES``."""
        if setting not in TEMPLATE_SWITCHES:
            raise ValueError(f"template update must be 'off' or one of {TEMPLATE_MODES}, got {setting!r}")
        return cls(enabled=setting != "off", mode="replace" if setting == "off" else setting)


class TemplateUpdatePolicy:
    """Per-target decision, one ``step`` per tracked frame."""

    def __init__(self, config: TemplateUpdateConfig | None = None) -> None:
        self.config = config or TemplateUpdateConfig()
        self.using_anchor = True
        self._prev_box: np.ndarray | None = None
        self._good: list[float] = []  # confidences of the current run of good frames
        self._since_change = 0
        self._baseline = 0.0
        self._trial: list[float] | None = None  # confidences seen by a refreshed template on probation

    def step(self, confidence: float, box_xywh: np.ndarray, lost: bool) -> TemplateAction:
        cfg = self.config
        if not cfg.enabled:
            return TemplateAction.KEEP
        box = np.asarray(box_xywh, dtype=np.float64)
        stable = self._prev_box is not None and box_iou(self._prev_box, box) >= cfg.min_iou
        self._prev_box = box
        self._since_change += 1

        if self._trial is not None:
            self._trial.append(confidence)
            if lost or (len(self._trial) >= cfg.probation
                        and float(np.mean(self._trial)) < self._baseline - cfg.revert_margin):
                return self._change(TemplateAction.REVERT)
            if len(self._trial) >= cfg.probation:
                self._trial = None  # accepted
            return TemplateAction.KEEP

        if cfg.min_confidence is None:
            raise ValueError("TemplateUpdateConfig.min_confidence is unset: resolve it for the network first")
        good = not lost and stable and confidence >= cfg.min_confidence
        self._good = [*self._good, confidence][-cfg.stable_frames:] if good else []
        if len(self._good) >= cfg.stable_frames and self._since_change >= cfg.interval:
            self._baseline = float(np.mean(self._good))
            return self._change(TemplateAction.REFRESH)
        return TemplateAction.KEEP

    def _change(self, action: TemplateAction) -> TemplateAction:
        self.using_anchor = action is TemplateAction.REVERT
        self._trial = [] if action is TemplateAction.REFRESH else None
        self._good = []
        self._since_change = 0
        return action
