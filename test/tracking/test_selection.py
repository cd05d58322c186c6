"""Detection selection policies and re-acquisition, on scripted targets and detections."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from grm_ros.tracking.selection import Detection, Reacquire, SelectionConfig, Start, plan, usable_detections
from grm_ros.tracking.state import TrackState

W, H = 640, 480


@dataclass
class FakeTarget:
    target_id: int
    box: tuple[float, float, float, float]
    label: str = ""
    state: TrackState = TrackState.TRACKING


CAR_LEFT = Detection((10, 10, 50, 40), "car", 0.95)
PERSON_CENTER = Detection((300, 220, 40, 40), "person", 0.7)
PERSON_RIGHT = Detection((560, 300, 40, 80), "person", 0.8)
DETECTIONS = [CAR_LEFT, PERSON_CENTER, PERSON_RIGHT]


def _started(actions) -> list[Detection]:
    assert all(isinstance(a, Start) for a in actions)
    return [a.detection for a in actions]


def test_highest_score_starts_the_most_confident_detection():
    assert _started(plan([], DETECTIONS, SelectionConfig(), W, H)) == [CAR_LEFT]


def test_nearest_center_starts_the_detection_closest_to_the_image_centre():
    assert _started(plan([], DETECTIONS, SelectionConfig(policy="nearest_center"), W, H)) == [PERSON_CENTER]


def test_best_iou_starts_the_detection_under_the_hint_box():
    config = SelectionConfig(policy="best_iou", hint_box=(550, 290, 50, 80))
    assert _started(plan([], DETECTIONS, config, W, H)) == [PERSON_RIGHT]
    away = SelectionConfig(policy="best_iou", hint_box=(200, 400, 10, 10))
    assert plan([], DETECTIONS, away, W, H) == []  # a hint that touches nothing selects nothing


def test_all_starts_every_detection_best_score_first_up_to_max_targets():
    assert _started(plan([], DETECTIONS, SelectionConfig(policy="all"), W, H)) == [
        CAR_LEFT, PERSON_RIGHT, PERSON_CENTER]
    capped = SelectionConfig(policy="all", max_targets=2)
    assert _started(plan([FakeTarget(1, (0, 400, 20, 20))], DETECTIONS, capped, W, H)) == [CAR_LEFT]


def test_all_does_not_duplicate_a_tracked_object():
    tracked = [FakeTarget(1, (12, 10, 50, 40), "car")]
    assert _started(plan(tracked, DETECTIONS, SelectionConfig(policy="all"), W, H)) == [
        PERSON_RIGHT, PERSON_CENTER]


def test_single_policies_start_nothing_while_a_target_exists():
    assert plan([FakeTarget(1, (0, 400, 20, 20))], DETECTIONS, SelectionConfig(), W, H) == []


def test_class_filter_and_min_score():
    config = SelectionConfig(classes=("person",), min_score=0.75)
    assert usable_detections(DETECTIONS, config, W, H) == [PERSON_RIGHT]
    assert _started(plan([], DETECTIONS, config, W, H)) == [PERSON_RIGHT]


def test_unusable_detections_are_ignored():
    broken = [Detection((float("nan"), 0, 10, 10), "car", 0.9), Detection((5, 5, 0, 10), "car", 0.9),
              Detection((700, 10, 10, 10), "car", 0.9), Detection((5, 5, 10, 10), "car", float("nan"))]
    assert usable_detections(broken, SelectionConfig(min_score=0.0), W, H) == []


def test_lost_target_is_reacquired_by_iou_and_keeps_its_id():
    lost = FakeTarget(7, (295, 215, 40, 40), "person", TrackState.LOST)
    assert plan([lost], DETECTIONS, SelectionConfig(), W, H) == [Reacquire(7, PERSON_CENTER)]


def test_reacquisition_needs_matching_class_and_enough_overlap():
    lost_car = FakeTarget(7, (295, 215, 40, 40), "car", TrackState.LOST)
    assert plan([lost_car], DETECTIONS, SelectionConfig(), W, H) == []
    no_class_check = SelectionConfig(match_class=False)
    assert plan([lost_car], DETECTIONS, no_class_check, W, H) == [Reacquire(7, PERSON_CENTER)]
    far = FakeTarget(7, (100, 300, 40, 40), "person", TrackState.LOST)
    assert plan([far], DETECTIONS, SelectionConfig(), W, H) == []
    assert plan([FakeTarget(7, (295, 215, 40, 40), "person", TrackState.LOST)], DETECTIONS,
                SelectionConfig(reacquire=False), W, H) == []


def test_a_tracking_target_is_not_reacquired():
    tracking = FakeTarget(7, (295, 215, 40, 40), "person", TrackState.TRACKING)
    assert plan([tracking], DETECTIONS, SelectionConfig(), W, H) == []


def test_two_lost_targets_take_one_detection_each_by_best_overlap():
    a = FakeTarget(1, (300, 222, 40, 40), "", TrackState.LOST)
    b = FakeTarget(2, (305, 225, 40, 40), "", TrackState.LOST)
    near_b = Detection((306, 226, 40, 40), "person", 0.9)
    actions = plan([a, b], [PERSON_CENTER, near_b], SelectionConfig(), W, H)
    assert sorted(actions, key=lambda r: r.target_id) == [Reacquire(1, PERSON_CENTER), Reacquire(2, near_b)]


def test_initialize_false_only_reacquires():
    assert plan([], DETECTIONS, SelectionConfig(initialize=False), W, H) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"policy": "random"}, "policy"),
    ({"min_score": 1.5}, "min_score"),
    ({"min_iou": -0.1}, "min_iou"),
    ({"max_targets": 0}, "max_targets"),
    ({"policy": "best_iou"}, "hint box"),
    ({"policy": "best_iou", "hint_box": (0, 0, 0, 10)}, "hint box"),
    ({"hint_box": (0, 0, float("nan"), 10)}, "hint box"),
])
def test_bad_selection_config_is_refused_with_the_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SelectionConfig(**kwargs)
