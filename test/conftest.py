"""The one rule for tests that need the benchmark data ($GRM_SHARED, else ../shared): a clone without it
skips them with the reason; CI (`.ci/run`, GRM_REQUIRE_DATA=1) fails them instead, so they never go
silently unrun where the data should be."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from grm_ros.datasets import shared_root


def require_shared(*parts: str) -> Path:
    """The path under the shared data root; skips the test (fails it under GRM_REQUIRE_DATA=1) when absent."""
    path = shared_root().joinpath(*parts)
    if path.exists():
        return path
    reason = f"benchmark data not found: {path} (point GRM_SHARED at the data folder)"
    if os.environ.get("GRM_REQUIRE_DATA") == "1":
        pytest.fail(f"{reason}; required because GRM_REQUIRE_DATA=1", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Callable[..., Path]:
    """``shared_data("sot", "Crossing")``: that path of the benchmark data, under the rule above."""
    return require_shared


@pytest.fixture(scope="session", autouse=True)
def private_engine_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Engine builds (ONNX exports) of this session go to its own folder, not the user's cache; set in the
    environment so node processes the tests start inherit it."""
    previous = os.environ.get("GRM_ROS_CACHE")
    os.environ["GRM_ROS_CACHE"] = str(tmp_path_factory.mktemp("engine-cache"))
    yield
    if previous is None:
        os.environ.pop("GRM_ROS_CACHE", None)
    else:
        os.environ["GRM_ROS_CACHE"] = previous
