"""The node as its own process, started as `ros2 run` would: a failed configure leaves it up and reporting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from grm_ros.ros.spin import spin_until

CONFIG = Path(__file__).resolve().parents[2] / "config" / "tracker.yaml"


def test_missing_checkpoint_keeps_the_process_up_and_on_diagnostics(ros_context, executor):
    statuses = []
    client = rclpy.create_node("process_watch", context=ros_context)
    client.create_subscription(DiagnosticArray, "/diagnostics",
                               lambda m: statuses.extend(s for s in m.status
                                                         if s.name == "/proc_test/grm_tracker: tracker"), 10)
    executor.add_node(client)
    proc = subprocess.Popen(
        [sys.executable, "-m", "grm_ros.ros.node", "--ros-args", "--params-file", str(CONFIG),
         "-p", "checkpoint:=/nonexistent/grm.pth", "-r", "__ns:=/proc_test"],
        env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert spin_until(executor, lambda: bool(statuses) or proc.poll() is not None, timeout=60)
        assert proc.poll() is None, proc.communicate()[0]
        status = statuses[-1]
        assert status.level == DiagnosticStatus.ERROR
        assert "not found: /nonexistent/grm.pth" in status.message
        assert {v.key: v.value for v in status.values}["state"] == "unconfigured"
        count = len(statuses)
        assert spin_until(executor, lambda: len(statuses) > count, timeout=10)  # still alive, still reporting
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, output
    assert "configure failed: FileNotFoundError" in output
