"""The "grm" harness tracker drives grm_ros.tracking's Tracker end to end (random weights, 3 frames)."""

import numpy as np
import pytest

from grm_ros.datasets import list_sequences
from grm_ros.evaluation.metrics import valid_boxes
from grm_ros.evaluation.ope import run_sequence
from grm_ros.evaluation.trackers import grm_factory


def test_grm_adapter_tracks_three_frames_with_template_update_toggled(shared_data):
    seq = next(s for s in list_sequences(shared_data("sot")) if s.name == "Crossing").head(3)
    for update in (True, False):
        factory = grm_factory(allow_random=True, template_update=update)
        tracker = factory()
        assert tracker._tracker.config.template_update.enabled is update
        result = run_sequence(tracker, seq)
        assert valid_boxes(result.boxes).all()
        assert np.array_equal(result.boxes[0], seq.gt[0])
        # A second sequence on the same factory restarts cleanly: one target only.
        run_sequence(factory(), seq)
        assert len(tracker._tracker.targets) == 1


def test_grm_config_override_names_are_checked():
    with pytest.raises(ValueError, match=r"unknown TrackerConfig field\(s\) \['lost_thresh'\]"):
        grm_factory(allow_random=True, config={"lost_thresh": 0.3})
