"""Parallel ROS processes never share a DDS domain, and children of an isolated process keep its."""

from __future__ import annotations

import os
import subprocess
import sys

CLAIM = "from grm_ros.ros.isolation import isolate_ros_environment as i; print(i())"


def _run(env: dict[str, str]) -> int:
    out = subprocess.run([sys.executable, "-c", CLAIM], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_independent_process_claims_another_domain():
    env = {k: v for k, v in os.environ.items() if k not in ("GRM_ROS_ISOLATED", "ROS_DOMAIN_ID")}
    assert _run(env) != int(os.environ["ROS_DOMAIN_ID"])


def test_child_of_isolated_process_keeps_parent_domain():
    assert _run(dict(os.environ)) == int(os.environ["ROS_DOMAIN_ID"])
    assert os.environ["ROS_LOCALHOST_ONLY"] == "1"
