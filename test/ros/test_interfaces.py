"""The package's own interfaces and the vision_msgs fixture, over real Fast DDS on loopback."""

from __future__ import annotations

import os

from builtin_interfaces.msg import Time
from rclpy.qos import QoSProfile
from std_msgs.msg import Header
from vision_msgs.msg import (
    BoundingBox2D,
    Detection2D,
    Detection2DArray,
    ObjectHypothesisWithPose,
)

from grm_ros.msg import Track, TrackArray
from grm_ros.ros.spin import spin_until
from grm_ros.srv import SetTarget, StopTarget


def test_process_runs_on_its_own_loopback_domain():
    domain = int(os.environ["ROS_DOMAIN_ID"])
    assert 100 <= domain < 200  # claimed by conftest, not a user's or the default domain
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"


def _track_array() -> TrackArray:
    header = Header(stamp=Time(sec=1700000000, nanosec=123456789), frame_id="camera_optical")
    tracks = [
        Track(header=header, id=7, state=Track.STATE_TRACKING, label="person", center_x=320.5,
              center_y=240.25, size_x=40.0, size_y=80.0, confidence=0.875, age=12),
        Track(header=header, id=9, state=Track.STATE_LOST, label="", center_x=10.0, center_y=20.0,
              size_x=5.0, size_y=6.0, confidence=0.125, age=3),
    ]
    return TrackArray(header=header, tracks=tracks)


def test_track_array_published_and_received_intact(ros_context, executor):
    import rclpy

    pub_node = rclpy.create_node("track_pub", context=ros_context)
    sub_node = rclpy.create_node("track_sub", context=ros_context)
    received: list[TrackArray] = []
    sub_node.create_subscription(TrackArray, "tracks", received.append, QoSProfile(depth=10))
    pub = pub_node.create_publisher(TrackArray, "tracks", QoSProfile(depth=10))
    executor.add_node(pub_node)
    executor.add_node(sub_node)
    sent = _track_array()

    def publish_and_check() -> bool:
        pub.publish(sent)
        return bool(received)

    assert spin_until(executor, publish_and_check)
    got = received[0]
    assert got == sent
    assert got.tracks[0].state == Track.STATE_TRACKING and got.tracks[1].state == Track.STATE_LOST
    assert got.header.frame_id == "camera_optical" and got.header.stamp.nanosec == 123456789


def test_set_and_stop_target_services_round_trip(ros_context, executor):
    import rclpy

    server = rclpy.create_node("target_server", context=ros_context)
    client_node = rclpy.create_node("target_client", context=ros_context)
    seen: list[SetTarget.Request] = []

    def set_target(request: SetTarget.Request, response: SetTarget.Response) -> SetTarget.Response:
        seen.append(request)
        response.success = request.size_x > 0 and request.size_y > 0
        response.message = "ok" if response.success else "box has zero size"
        response.target_id = 42 if response.success else 0
        return response

    def stop_target(request: StopTarget.Request, response: StopTarget.Response) -> StopTarget.Response:
        response.success, response.stopped = True, 3 if request.target_id == 0 else 1
        response.message = "stopped"
        return response

    server.create_service(SetTarget, "set_target", set_target)
    server.create_service(StopTarget, "stop_target", stop_target)
    set_client = client_node.create_client(SetTarget, "set_target")
    stop_client = client_node.create_client(StopTarget, "stop_target")
    executor.add_node(server)
    executor.add_node(client_node)
    assert spin_until(executor, lambda: set_client.service_is_ready() and stop_client.service_is_ready())

    request = SetTarget.Request(center_x=100.0, center_y=50.0, size_x=20.0, size_y=10.0,
                                stamp=Time(sec=5, nanosec=6), target_id=0, label="cup")
    future = set_client.call_async(request)
    assert spin_until(executor, future.done)
    assert future.result().success and future.result().target_id == 42
    assert seen[0].label == "cup" and seen[0].stamp == Time(sec=5, nanosec=6)

    refused = set_client.call_async(SetTarget.Request(center_x=1.0, center_y=1.0))
    assert spin_until(executor, refused.done)
    assert not refused.result().success and refused.result().message == "box has zero size"

    stop_all = stop_client.call_async(StopTarget.Request(target_id=0))
    assert spin_until(executor, stop_all.done)
    assert stop_all.result().stopped == 3


def test_vision_msgs_detection_array_round_trip(ros_context, executor):
    import rclpy

    node = rclpy.create_node("detections_loop", context=ros_context)
    received: list[Detection2DArray] = []
    node.create_subscription(Detection2DArray, "detections", received.append, 10)
    pub = node.create_publisher(Detection2DArray, "detections", 10)
    executor.add_node(node)

    header = Header(stamp=Time(sec=3, nanosec=4), frame_id="cam")
    detection = Detection2D(header=header, id="track-7")
    detection.bbox = BoundingBox2D(size_x=30.0, size_y=40.0)
    detection.bbox.center.position.x, detection.bbox.center.position.y = 50.5, 60.5
    detection.bbox.center.theta = 0.25
    hypothesis = ObjectHypothesisWithPose()
    hypothesis.hypothesis.class_id, hypothesis.hypothesis.score = "dog", 0.9
    hypothesis.pose.pose.position.x = 1.5
    hypothesis.pose.covariance[0] = 2.0
    detection.results.append(hypothesis)
    sent = Detection2DArray(header=header, detections=[detection])

    assert spin_until(executor, lambda: pub.publish(sent) or bool(received))
    got = received[0]
    assert got == sent
    assert got.detections[0].results[0].hypothesis.class_id == "dog"
    assert got.detections[0].bbox.center.position.x == 50.5
    assert len(got.detections[0].results[0].pose.covariance) == 36
