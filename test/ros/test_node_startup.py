"""The node's start-up as launch and a params file meet it, in its own process.

Autostart is visible to launch: a client that subscribes to ~/transition_event before the process starts
(as launch_ros's LifecycleNode does) receives the configure and activate transitions. A value that the
parameter table refuses ends the process with exit status 2 and one line naming parameter, value and range.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import rclpy
from lifecycle_msgs.msg import TransitionEvent

from grm_ros.ros.spin import spin_until


def test_a_listener_started_first_sees_autostart_configure_and_activate(ros_context, executor):
    events: list[TransitionEvent] = []
    client = rclpy.create_node("launch_like", context=ros_context)
    client.create_subscription(TransitionEvent, "/lt/grm_tracker/transition_event", events.append, 10)
    executor.add_node(client)
    # A loaded machine may take seconds to discover the listener; the wait is long so only a real
    # failure to wait for it (not a slow discovery) fails the test.
    proc = subprocess.Popen([sys.executable, "-m", "grm_ros.ros.node", "--ros-args", "-r", "__ns:=/lt",
                             "-p", "autostart_wait:=60.0"],
                            env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        reached = spin_until(executor, lambda: any(e.goal_state.label == "active" for e in events)
                             or proc.poll() is not None, timeout=120)
        exited = proc.poll()
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=30)[0]
    seen = [(e.start_state.label, e.goal_state.label) for e in events]
    assert reached and exited is None, f"events {seen}, exit {exited}, output:\n{output}"
    assert proc.returncode == 0, output
    # rclpy's events carry transition id 0; the states say which transition it was.
    assert seen == [("unconfigured", "configuring"), ("configuring", "inactive"), ("inactive", "activating"),
                    ("activating", "active")], output


@pytest.mark.parametrize(("yaml_text", "line"), [
    ("max_targets: 100", "error: parameter max_targets = 100: must be an integer in [1, 64]"),
    ("detections:\n      min_score: 1",
     "error: parameter detections.min_score = 1: must be a double in [0, 1] (write 1.0)"),
    ("dtype: fp64", "error: parameter dtype = 'fp64': must be a string, one of fp32, fp16, bf16"),
])
def test_a_refused_params_file_value_exits_2_with_one_line(tmp_path, yaml_text, line):
    params = tmp_path / "bad.yaml"
    params.write_text(f"/**:\n  ros__parameters:\n    {yaml_text}\n")
    proc = subprocess.run([sys.executable, "-m", "grm_ros.ros.node", "--ros-args", "--params-file",
                           str(params)], env=os.environ.copy(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == line + "\n"
