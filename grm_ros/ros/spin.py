"""Spin an executor until something happens: the one waiting loop of the tests, demo and benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable


def spin_until(executor, condition: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> bool:
    """Spin ``executor`` until ``condition()`` holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        executor.spin_once(timeout_sec=step)
    return True
