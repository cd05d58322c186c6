"""The node as its own process, started as `ros2 run` would: a failed configure leaves it up and reporting."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import Image

from grm_ros.bench.tracker_bench import moving_frames, start_boxes
from grm_ros.msg import TrackArray
from grm_ros.ros.node import image_qos_override
from grm_ros.ros.spin import spin_until
from grm_ros.srv import SetTarget

from node_harness import image_msg, stamp

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
        # Autostart runs a moment after start-up (it waits for launch's listener), so the first status
        # may still be the unconfigured node's warning: wait for the failed configure's error.
        assert spin_until(executor, lambda: any(s.level == DiagnosticStatus.ERROR for s in statuses)
                          or proc.poll() is not None, timeout=60)
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


# A user's own main with rclpy's signal handlers, which shut the context down before anything else runs.
USER_MAIN = """
import rclpy
from rclpy.executors import ExternalShutdownException
from grm_ros.ros.node import TrackerNode
rclpy.init()
node = TrackerNode()
try:
    rclpy.spin(node)
except (KeyboardInterrupt, ExternalShutdownException):
    pass
finally:
    node.destroy_node()
    rclpy.try_shutdown()
"""


@pytest.mark.parametrize(("entry", "signum"), [
    (["-m", "grm_ros.ros.node"], signal.SIGINT),
    (["-m", "grm_ros.ros.node"], signal.SIGTERM),
    (["-c", USER_MAIN], signal.SIGINT),
], ids=["sigint", "sigterm", "sigint_rclpy_spin"])
def test_sigint_and_sigterm_while_frames_stream_stop_cleanly(ros_context, executor, entry, signum):
    """Defect 4 of issue 18: a signal while frames streamed sometimes ended in ``Exception in thread
    grm_tracker_worker: ... RCLError: Failed to publish: publisher's context is invalid``. Eight targets on
    640x480 frames keep the worker busy, so the signal lands while it is between update and publish.
    ``main`` destroys the node before ROS shuts down; under rclpy's handlers (a user's own main) the
    context goes first and the worker must notice it instead of raising."""
    ns = f"/stream_{signum.name.lower()}_{entry[0][1]}"
    client = rclpy.create_node("stream_client", namespace=ns, context=ros_context)
    executor.add_node(client)
    tracks: list[TrackArray] = []
    client.create_subscription(TrackArray, f"{ns}/grm_tracker/tracks", tracks.append, 10)
    publisher = client.create_publisher(Image, f"{ns}/image", 10)
    setter = client.create_client(SetTarget, f"{ns}/grm_tracker/set_target")
    frames = [image_msg(rgb, stamp(0)) for rgb in moving_frames(640, 480, 8)]
    sent = itertools.count(1)

    def stream() -> bool:
        msg = frames[next(sent) % len(frames)]
        msg.header.stamp = client.get_clock().now().to_msg()
        publisher.publish(msg)
        return False

    proc = subprocess.Popen(
        [sys.executable, *entry, "--ros-args", "--params-file", str(CONFIG),
         "-p", f"{image_qos_override(ns)}:=reliable", "-r", f"__ns:={ns}"],
        env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert spin_until(executor, lambda: stream() or bool(tracks) or proc.poll() is not None, timeout=120)
        assert proc.poll() is None
        for box in start_boxes(640, 480, 8):
            future = setter.call_async(SetTarget.Request(center_x=box[0] + box[2] / 2,
                                                         center_y=box[1] + box[3] / 2, size_x=box[2],
                                                         size_y=box[3]))
            assert spin_until(executor, future.done, timeout=30) and future.result().success
        count = len(tracks)
        assert spin_until(executor, lambda: stream() or len(tracks) > count + 5, timeout=30)
        proc.send_signal(signum)
        spin_until(executor, lambda: stream() or proc.poll() is not None, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, output
    assert "Traceback" not in output and "Exception" not in output, output
