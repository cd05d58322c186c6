"""Tracking without ROS: the shared crop geometry, target states, template updates and the GRM tracker."""

from grm_ros.tracking.state import ConfidenceHysteresis, HysteresisConfig, TrackState
from grm_ros.tracking.template_update import TemplateAction, TemplateUpdateConfig, TemplateUpdatePolicy
from grm_ros.tracking.tracker import Target, Tracker, TrackerConfig, TrackResult, build_tracker, tracker_for

__all__ = [
    "ConfidenceHysteresis",
    "HysteresisConfig",
    "Target",
    "TemplateAction",
    "TemplateUpdateConfig",
    "TemplateUpdatePolicy",
    "TrackResult",
    "TrackState",
    "Tracker",
    "TrackerConfig",
    "build_tracker",
    "tracker_for",
]
