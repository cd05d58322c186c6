"""Spinning helpers shared by the ROS tests."""

from __future__ import annotations

import time
from collections.abc import Callable


def spin_until(executor, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Spin the executor until ``condition()`` holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        executor.spin_once(timeout_sec=0.05)
    return True
