"""What the two fuzz suites (library and node) share: example budgets and the value strategies.

CI runs a small, derandomised budget (the same examples every run, no example database, so nothing is
written into the tree). ``make fuzz`` sets ``GRM_FUZZ_SCALE`` to run that many times more examples, drawn
at random and remembered in ``.cache/hypothesis`` so that a failure found once is replayed first.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

SCALE = int(os.environ.get("GRM_FUZZ_SCALE", "1"))
DATABASE = ".cache/hypothesis"


def budget(ci_examples: int) -> settings:
    """Hypothesis settings for ``ci_examples`` examples in CI, ``SCALE`` times as many under make fuzz."""
    common = {"deadline": None, "print_blob": True,
              "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
    if SCALE == 1:
        return settings(max_examples=ci_examples, derandomize=True, database=None, **common)
    return settings(max_examples=ci_examples * SCALE, database=DirectoryBasedExampleDatabase(DATABASE),
                    **common)


# Any float: NaN, both infinities, subnormals, the largest finite values, -0.0.
any_float = st.floats()
# Magnitudes at the edges of float64 and float32 and of the tracker's own bounds.
edge_float = st.sampled_from([0.0, -0.0, 5e-324, 1e-300, 1e-45, 1e-3, 9.99, 10.0, 1e4, 3.0e38, 3.5e38,
                              1.4e154, 1.5e154, 1e300, 1.7976931348623157e308, float("inf"), float("nan")])
mixed_float = st.one_of(any_float, edge_float, edge_float.map(lambda v: -v))


def near_boxes(width: int = 160, height: int = 120) -> st.SearchStrategy[tuple[float, float, float, float]]:
    """x, y, w, h around a ``width`` x ``height`` frame, positive sizes: mostly boxes the tracker takes."""
    return st.tuples(st.floats(-width, 2 * width), st.floats(-height, 2 * height),
                     st.floats(1e-3, 3 * width), st.floats(1e-3, 3 * height))


def boxes(width: int = 160, height: int = 120) -> st.SearchStrategy[tuple[float, float, float, float]]:
    """x, y, w, h: near the frame (half the time, so that the tracking path is exercised too), wholly
    arbitrary, or near the frame with one value at an edge of the float range."""
    near = near_boxes(width, height)
    one_edge = st.tuples(near, st.integers(0, 3), mixed_float).map(
        lambda t: tuple(t[2] if i == t[1] else v for i, v in enumerate(t[0])))
    return st.one_of(near, near, st.tuples(mixed_float, mixed_float, mixed_float, mixed_float), one_edge)
