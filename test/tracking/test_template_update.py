"""The template-update policy on scripted confidences and boxes: accept, reject, revert."""

import numpy as np
import pytest

from grm_ros.model import load_variant
from grm_ros.tracking.template_update import TemplateAction, TemplateUpdateConfig, TemplateUpdatePolicy
from grm_ros.tracking.tracker import TrackerConfig

KEEP, REFRESH, REVERT = TemplateAction.KEEP, TemplateAction.REFRESH, TemplateAction.REVERT
BOX = np.array([50.0, 40.0, 20.0, 30.0])
CFG = TemplateUpdateConfig(enabled=True, min_confidence=0.7, min_iou=0.7, stable_frames=3, interval=4,
                           probation=3, revert_margin=0.1)


def steps(policy: TemplateUpdatePolicy, frames: list[tuple[float, np.ndarray, bool]]) -> list[TemplateAction]:
    return [policy.step(c, b, lost) for c, b, lost in frames]


def steady(n: int, confidence: float = 0.9) -> list[tuple[float, np.ndarray, bool]]:
    return [(confidence, BOX + np.array([i * 0.5, 0, 0, 0]), False) for i in range(n)]


def test_disabled_policy_never_acts():
    policy = TemplateUpdatePolicy(TemplateUpdateConfig())
    assert set(steps(policy, steady(50))) == {KEEP}


def test_refresh_after_stable_confident_run_and_interval_then_accept():
    policy = TemplateUpdatePolicy(CFG)
    # frame 1 has no previous box (not stable); frames 2-4 are a run of 3 good frames; interval 4 reached.
    actions = steps(policy, steady(4))
    assert actions == [KEEP, KEEP, KEEP, REFRESH]
    assert not policy.using_anchor
    # probation: confidence as good as the baseline -> accepted, no revert; the next refresh waits
    assert steps(policy, steady(3)) == [KEEP, KEEP, KEEP]
    assert not policy.using_anchor
    # probation frames count towards the interval but not towards the next run of good frames
    assert steps(policy, steady(3)) == [KEEP, KEEP, REFRESH]


def test_low_confidence_unstable_or_lost_frames_do_not_refresh():
    policy = TemplateUpdatePolicy(CFG)
    weak = steady(6, confidence=0.6)
    jumping = [(0.9, BOX + np.array([20 * (i % 2), 0, 0, 0]), False) for i in range(6)]  # IoU 0
    lost = [(0.9, BOX, True) for _ in range(6)]
    assert set(steps(policy, weak + jumping + lost)) == {KEEP}
    assert policy.using_anchor


def test_interrupted_run_starts_over():
    policy = TemplateUpdatePolicy(CFG)
    frames = [*steady(3), (0.2, BOX, False), *steady(2)]  # the weak frame breaks the run of good frames
    assert REFRESH not in steps(policy, frames)
    assert policy.step(0.9, BOX, False) is REFRESH


def test_revert_when_refreshed_template_scores_worse():
    policy = TemplateUpdatePolicy(CFG)
    assert steps(policy, steady(4))[-1] is REFRESH  # baseline = 0.9
    assert steps(policy, steady(3, confidence=0.75)) == [KEEP, KEEP, REVERT]  # 0.75 < 0.9 - 0.1
    assert policy.using_anchor


def test_small_drop_within_margin_is_accepted():
    policy = TemplateUpdatePolicy(CFG)
    steps(policy, steady(4))
    assert steps(policy, steady(3, confidence=0.85)) == [KEEP, KEEP, KEEP]
    assert not policy.using_anchor


def test_revert_at_once_when_lost_on_probation():
    policy = TemplateUpdatePolicy(CFG)
    steps(policy, steady(4))
    assert policy.step(0.9, BOX, True) is REVERT
    assert policy.using_anchor
    # after a revert the interval applies again before the next refresh
    assert steps(policy, steady(4)) == [KEEP, KEEP, KEEP, REFRESH]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"min_confidence": 1.2}, "min_confidence"),
    ({"min_iou": -0.1}, "min_iou"),
    ({"stable_frames": 0}, "stable_frames"),
    ({"probation": 2.5}, "probation"),
    ({"mode": "blend"}, "mode"),
])
def test_invalid_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TemplateUpdateConfig(**kwargs)


def test_an_unset_gate_opens_at_the_networks_recover_threshold():
    net = load_variant("nanostem_256")
    resolved = TrackerConfig(template_update=TemplateUpdateConfig(enabled=True)).for_network(net)
    assert resolved.template_update.min_confidence == resolved.recover_threshold == 0.5
    policy = TemplateUpdatePolicy(resolved.template_update)
    # a healthy track of this network (confidence 0.55, under the old fixed 0.7) refreshes after the interval
    assert REFRESH in steps(policy, steady(30, confidence=0.55))
    with pytest.raises(ValueError, match="unset"):
        TemplateUpdatePolicy(TemplateUpdateConfig(enabled=True)).step(0.9, BOX, False)
