"""Tracker speed settings: CPU threads and the step runner (CUDA graphs only on CUDA)."""

from __future__ import annotations

import pytest
import torch

from grm_ros.model import GRM, load_variant
from grm_ros.tracking.tracker import Tracker, TrackerConfig


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_threads_must_be_a_positive_integer(threads) -> None:
    with pytest.raises(ValueError, match="threads"):
        TrackerConfig(threads=threads)


def test_threads_setting_applies_and_cpu_runs_eagerly() -> None:
    before = torch.get_num_threads()
    try:
        tracker = Tracker(GRM(load_variant("small_cpu")), TrackerConfig(threads=1))
        assert torch.get_num_threads() == 1
        assert not tracker.step.capture and not tracker.step.static
        assert tracker.step.threshold == tracker.threshold
    finally:
        torch.set_num_threads(before)
