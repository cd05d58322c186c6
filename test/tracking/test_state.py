"""The TRACKING <-> LOST hysteresis on scripted confidence sequences."""

import pytest

from grm_ros.tracking.state import ConfidenceHysteresis, HysteresisConfig, TrackState

T, L, S = TrackState.TRACKING, TrackState.LOST, TrackState.STOPPED


def run(config: HysteresisConfig, confidences: list[float]) -> list[TrackState]:
    machine = ConfidenceHysteresis(config)
    return [machine.update(c) for c in confidences]


def test_lost_after_n_consecutive_weak_frames_and_recovery_after_m_strong_ones():
    cfg = HysteresisConfig(lost_threshold=0.3, recover_threshold=0.5, lost_after=3, recover_after=2)
    confidences = [0.9, 0.2, 0.1, 0.2, 0.4, 0.6, 0.3, 0.6, 0.7, 0.2]
    assert run(cfg, confidences) == [T, T, T, L, L, L, L, L, T, T]


def test_a_strong_frame_resets_the_weak_streak():
    cfg = HysteresisConfig(lost_threshold=0.3, recover_threshold=0.5, lost_after=3, recover_after=1)
    assert run(cfg, [0.1, 0.1, 0.8, 0.1, 0.1, 0.1]) == [T, T, T, T, T, L]


def test_confidence_between_the_thresholds_neither_loses_nor_recovers():
    cfg = HysteresisConfig(lost_threshold=0.3, recover_threshold=0.5, lost_after=1, recover_after=1)
    assert run(cfg, [0.4, 0.1, 0.4, 0.45, 0.5, 0.35]) == [T, L, L, L, T, T]


def test_boundary_values_count_as_strong():
    cfg = HysteresisConfig(lost_threshold=0.3, recover_threshold=0.5, lost_after=1, recover_after=1)
    assert run(cfg, [0.3, 0.29, 0.5]) == [T, L, T]


def test_stopped_is_terminal():
    machine = ConfidenceHysteresis(HysteresisConfig(lost_after=1))
    machine.update(0.0)
    machine.stop()
    assert machine.update(0.99) is S and machine.state is S


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"lost_threshold": 0.6, "recover_threshold": 0.5}, "flap"),
    ({"lost_threshold": 1.5}, r"in \[0, 1\]"),
    ({"recover_threshold": float("nan")}, r"in \[0, 1\]"),
    ({"lost_after": 0}, ">= 1"),
    ({"recover_after": 1.5}, ">= 1"),
])
def test_invalid_thresholds_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HysteresisConfig(**kwargs)
