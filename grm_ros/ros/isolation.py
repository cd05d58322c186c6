"""Keep every ROS process of this project on loopback and on a DDS domain of its own.

Tests, the demo and the benchmarks may run in parallel on one machine (and CI shares it with a
session), so each top-level process claims a free ROS_DOMAIN_ID with a file lock and holds it for
its lifetime; child processes inherit the claimed id through the environment.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import IO

DOMAIN_RANGE = range(100, 200)
_MARKER = "GRM_ROS_ISOLATED"
_held: list[IO[str]] = []


def claim_domain_id(lock_dir: Path | None = None) -> int:
    """Return a domain id that no other process on this machine holds, and hold it until exit."""
    lock_dir = lock_dir or Path(tempfile.gettempdir())
    for domain in DOMAIN_RANGE:
        handle = open(lock_dir / f"grm_ros-domain-{domain}.lock", "w")  # noqa: SIM115 - held for life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _held.append(handle)
        return domain
    raise RuntimeError(f"all ROS domain ids {DOMAIN_RANGE.start}..{DOMAIN_RANGE.stop - 1} are in use")


def isolate_ros_environment(env: dict[str, str] | None = None) -> int:
    """Confine DDS traffic to loopback and to this process tree's own domain; return the domain id.

    Must run before ``rclpy.init``. A process started by an isolated parent keeps the parent's id.
    """
    env = os.environ if env is None else env
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_LOCALHOST_ONLY"] = "1"  # distros before Jazzy
    if env.get(_MARKER) != "1" or "ROS_DOMAIN_ID" not in env:
        env["ROS_DOMAIN_ID"] = str(claim_domain_id())
        env[_MARKER] = "1"
    return int(env["ROS_DOMAIN_ID"])
