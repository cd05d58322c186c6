"""The parameter table: values map onto the tracker and selection settings; bad values name the parameter."""

from __future__ import annotations

from array import array

import pytest

from grm_ros.model import DEFAULT_VARIANT, load_variant
from grm_ros.model.engine import EngineConfig
from grm_ros.msg import Track
from grm_ros.ros.parameters import SPECS, defaults, settings_from
from grm_ros.tracking.state import TrackState
from grm_ros.tracking.tracker import TrackerConfig


def test_defaults_are_the_tracker_defaults():
    settings = settings_from(defaults())
    library = TrackerConfig(color_order="rgb").for_network(load_variant(DEFAULT_VARIANT))
    assert settings.tracker == library
    # The node's one deliberate difference: one engine thread (small shared CPUs), where the library
    # leaves torch's process-wide setting alone.
    assert settings.engine == EngineConfig(threads=1)
    assert settings_from({**defaults(), "engine.threads": 0}).engine.threads is None
    chosen = settings_from({**defaults(), "engine.backend": "onnxruntime", "device": "cuda:1",
                            "dtype": "fp16"})
    assert chosen.engine == EngineConfig(backend="onnxruntime", device="cuda:1", dtype="fp16", threads=1)
    assert settings.checkpoint is None and settings.selection.hint_box is None
    assert settings.selection.classes == ()


def test_parameters_map_onto_the_tracker_and_selection_settings():
    values = defaults()
    values.update({"tracker.division_threshold": 0.3, "tracker.lost_after": 9,
                   "tracker.template_update.enabled": True,
                   "tracker.template_update.interval": 40, "tracker.benchmark": "lasot",
                   "detections.classes": "person, car", "detections.policy": "best_iou",
                   "detections.hint_box": array("d", [1.0, 2.0, 30.0, 40.0]), "max_targets": 3,
                   "checkpoint": "/models/grm.pth", "input.mono16_scaling": "range"})
    settings = settings_from(values)
    assert settings.tracker.division_threshold == 0.3 and settings.tracker.lost_after == 9
    assert settings.tracker.template_update.enabled and settings.tracker.template_update.interval == 40
    assert settings.tracker.benchmark == "lasot"
    assert settings.selection.classes == ("person", "car") and settings.selection.max_targets == 3
    assert settings.selection.hint_box == (1.0, 2.0, 30.0, 40.0)
    assert settings.checkpoint == "/models/grm.pth" and settings.mono16.mode == "range"


@pytest.mark.parametrize("name, value, reason", [
    ("tracker.lost_after", 0, "tracker.lost_after must be in [1, 1000]"),
    ("tracker.lost_threshold", 0.7, "recover_threshold 0.5 must be >= lost_threshold 0.7"),
    ("tracker.geometry", "gpu", "tracker.geometry must be one of device, reference"),
    ("detections.min_iou", float("nan"), "detections.min_iou must be finite"),
    ("max_targets", "8", "max_targets must be of type int"),
    ("detections.hint_box", [1.0, 2.0, 3.0], "hint_box must have 4 numbers"),
    ("detections.hint_box", "1,2,3,4", "must be a list of numbers"),
    ("device", "cuda:x", "device must be cpu, cuda or cuda:N"),
    ("variant", "vitb_512", "variant 'vitb_512' is neither a builtin"),
    ("input.mono16_scaling", "range-ish", "input.mono16_scaling must be one of max, range"),
    ("engine.backend", "tvm", "engine.backend must be one of auto, torch"),
])
def test_bad_values_are_refused_naming_the_parameter(name, value, reason):
    values = defaults()
    values[name] = value
    with pytest.raises(ValueError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        settings_from(values)


def test_a_missing_value_is_named():
    values = defaults()
    del values["tracker.recover_after"]
    with pytest.raises(ValueError, match=r"missing parameter\(s\): tracker\.recover_after"):
        settings_from(values)


def test_descriptors_carry_ranges_choices_and_when_they_apply():
    lost_after = SPECS["tracker.lost_after"].descriptor()
    assert (lost_after.integer_range[0].from_value, lost_after.integer_range[0].to_value) == (1, 1000)
    policy = SPECS["detections.policy"].descriptor()
    assert "best_iou" in policy.additional_constraints and "Applies: live." in policy.description
    assert SPECS["autostart"].descriptor().read_only


def test_track_state_constants_match_the_tracker():
    assert (Track.STATE_TRACKING, Track.STATE_LOST, Track.STATE_STOPPED) == (
        TrackState.TRACKING, TrackState.LOST, TrackState.STOPPED)
