"""Real rclpy for the ROS tests: each test process on its own DDS domain, on loopback only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from grm_ros.ros.isolation import isolate_ros_environment

DOMAIN_ID = isolate_ros_environment()  # before rclpy creates any context

import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402


@pytest.fixture
def ros_context() -> Iterator[Context]:
    context = Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        rclpy.shutdown(context=context)


@pytest.fixture
def executor(ros_context: Context) -> Iterator[SingleThreadedExecutor]:
    ex = SingleThreadedExecutor(context=ros_context)
    try:
        yield ex
    finally:
        ex.shutdown()
