"""QoS through rclpy's standard overrides: sensor-data by default, ``qos_overrides.<topic>...`` on the
command line taking effect on the image subscription and on the outputs, as seen in the ROS graph."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from rclpy.qos import ReliabilityPolicy

from grm_ros.ros.spin import spin_until

from node_harness import make_harness


def _reliability(endpoints) -> list[ReliabilityPolicy]:
    return [e.qos_profile.reliability for e in endpoints]


def _own_image_reliability(h) -> ReliabilityPolicy:
    """The reliability of this node's own image subscription, as the ROS graph reports it."""
    topic = f"{h.node.get_namespace()}/image"

    def own() -> list:
        return [e for e in h.client.get_subscriptions_info_by_topic(topic)
                if (e.node_namespace, e.node_name) == (h.node.get_namespace(), h.node.get_name())]

    assert h.spin_until(lambda: bool(own()))
    (sub,) = own()
    return sub.qos_profile.reliability  # (the graph reports no depth)


def test_the_image_subscription_defaults_to_sensor_data_best_effort(ros_context, executor):
    h = make_harness(ros_context, executor)
    assert _own_image_reliability(h) == ReliabilityPolicy.BEST_EFFORT
    h.close()


def test_one_nodes_override_does_not_leak_into_the_next_node(ros_context, executor):
    """rclpy writes overrides into the profile object it is given; a shared sensor-data profile made every
    later node in the process reliable."""
    first = make_harness(ros_context, executor, reliable_image=True)
    assert _own_image_reliability(first) == ReliabilityPolicy.RELIABLE
    second = make_harness(ros_context, executor)
    assert _own_image_reliability(second) == ReliabilityPolicy.BEST_EFFORT
    first.close()
    second.close()


def test_command_line_qos_overrides_take_effect(ros_context, executor):
    client = make_harness(ros_context, executor).client  # a node to read the graph with
    proc = subprocess.Popen(
        [sys.executable, "-m", "grm_ros.ros.node", "--ros-args", "-p", "allow_random:=true",
         "-p", "qos_overrides./image.subscription.reliability:=reliable",
         "-p", "qos_overrides./grm_tracker/tracks.publisher.reliability:=best_effort"],
        env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def seen() -> bool:
            graph = (client.get_subscriptions_info_by_topic("/image")
                     and client.get_publishers_info_by_topic("/grm_tracker/tracks"))
            return bool(graph) or proc.poll() is not None

        assert spin_until(executor, seen, timeout=60)
        assert proc.poll() is None, proc.communicate()[0]
        assert _reliability(client.get_subscriptions_info_by_topic("/image")) == [ReliabilityPolicy.RELIABLE]
        assert _reliability(client.get_publishers_info_by_topic("/grm_tracker/tracks")) == [
            ReliabilityPolicy.BEST_EFFORT]
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, output
