"""A tracker node and a client node in one process, talking over real DDS: the ROS tests' common ground."""

from __future__ import annotations

import array
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import Log
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesisWithPose

from grm_ros.msg import TrackArray
from grm_ros.ros.image_conversion import rgb_to_raw
from grm_ros.ros.node import TrackerNode, image_qos_override
from grm_ros.ros.spin import spin_until
from grm_ros.srv import SetTarget, StopTarget

_namespaces = itertools.count()
FRAME_ID = "camera_optical"


def scene(width: int = 160, height: int = 120, x: int = 60, y: int = 40, seed: int = 0) -> np.ndarray:
    """A textured RGB frame with a bright square at (x, y): enough structure for the network to chew on."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 120, (height, width, 3), dtype=np.uint8)
    image[y:y + 24, x:x + 24] = (230, 60, 40)
    return image


def stamp(sec: int, nanosec: int = 0) -> Time:
    return Time(sec=sec, nanosec=nanosec)


def image_msg(rgb: np.ndarray, when: Time, encoding: str = "rgb8") -> Image:
    height, width, step, data = rgb_to_raw(rgb)
    return Image(header=Header(stamp=when, frame_id=FRAME_ID), height=height, width=width,
                 encoding=encoding, is_bigendian=0, step=step, data=data)


def detection(box_xywh, label: str, score: float) -> Detection2D:
    x, y, w, h = box_xywh
    d = Detection2D(bbox=BoundingBox2D(size_x=float(w), size_y=float(h)))
    d.bbox.center.position.x, d.bbox.center.position.y = x + w / 2, y + h / 2
    hypothesis = ObjectHypothesisWithPose()
    hypothesis.hypothesis.class_id, hypothesis.hypothesis.score = label, score
    d.results.append(hypothesis)
    return d


def non_finite_fields(msg: Any, path: str = "") -> list[str]:
    """Paths of every float field of a message, searched recursively, that holds NaN or infinity."""
    if isinstance(msg, float):
        return [] if math.isfinite(msg) else [path or "value"]
    if hasattr(msg, "get_fields_and_field_types"):
        return [bad for name in msg.get_fields_and_field_types()
                for bad in non_finite_fields(getattr(msg, name), f"{path}.{name}")]
    if isinstance(msg, list | tuple | array.array | np.ndarray):
        return [bad for i, value in enumerate(msg) for bad in non_finite_fields(value, f"{path}[{i}]")]
    return []


def inside(track: Any, width: int, height: int) -> bool:
    """Whether a Track's box lies within a ``width`` x ``height`` image (up to the centre/size round trip)."""
    x, y = track.center_x - track.size_x / 2, track.center_y - track.size_y / 2
    eps = 1e-6
    return x >= -eps and y >= -eps and x + track.size_x <= width + eps and y + track.size_y <= height + eps


@dataclass
class Harness:
    """The node under test plus a client that publishes images and detections and calls the services."""

    executor: Any
    node: TrackerNode
    client: Any
    tracks: list[TrackArray] = field(default_factory=list)
    rosout: list[Log] = field(default_factory=list)
    diagnostics: list[DiagnosticStatus] = field(default_factory=list)

    def __post_init__(self) -> None:
        ns = self.node.get_namespace()
        name = self.node.get_name()
        self.status_name = f"{self.node.get_fully_qualified_name()}: tracker"
        self.image_pub = self.client.create_publisher(Image, f"{ns}/image", 10)
        self.detections_pub = self.client.create_publisher(Detection2DArray, f"{ns}/detections", 10)
        self.client.create_subscription(TrackArray, f"{ns}/{name}/tracks", self.tracks.append, 50)
        self.client.create_subscription(Log, "/rosout", self.rosout.append, 100)
        self.client.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.set_client = self.client.create_client(SetTarget, f"{ns}/{name}/set_target")
        self.stop_client = self.client.create_client(StopTarget, f"{ns}/{name}/stop_target")

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        self.diagnostics.extend(s for s in msg.status if s.name == self.status_name)

    def status(self) -> tuple[int, str, dict[str, str]] | None:
        """(level, message, values) of the node's latest /diagnostics status, None before the first one."""
        if not self.diagnostics:
            return None
        last = self.diagnostics[-1]
        return int.from_bytes(last.level, "little"), last.message, {v.key: v.value for v in last.values}

    def logged(self, text: str) -> list[str]:
        """Messages of the node under test on /rosout that contain ``text``."""
        return [m.msg for m in self.rosout if m.name.endswith(self.node.get_name()) and text in m.msg]

    def spin_until(self, condition, timeout: float = 20.0) -> bool:
        return spin_until(self.executor, condition, timeout)

    def tracks_at(self, when: Time) -> list[TrackArray]:
        return [t for t in self.tracks if t.header.stamp == when]

    def send(self, rgb: np.ndarray, when: Time, encoding: str = "rgb8") -> TrackArray:
        """Publish a frame (again, until discovery has matched) and return the tracks computed on it."""
        msg = image_msg(rgb, when, encoding)
        deadline = time.monotonic() + 20.0
        while not self.tracks_at(when):
            assert time.monotonic() < deadline, f"no tracks for the frame stamped {when}"
            self.image_pub.publish(msg)
            self.spin_until(lambda: bool(self.tracks_at(when)), timeout=0.3)
        return self.tracks_at(when)[-1]

    def publish_detections(self, when: Time, detections: list[Detection2D]) -> None:
        self.detections_pub.publish(Detection2DArray(header=Header(stamp=when, frame_id=FRAME_ID),
                                                     detections=detections))

    def call(self, client, request):
        assert self.spin_until(client.service_is_ready), "service not available"
        future = client.call_async(request)
        assert self.spin_until(future.done), "service call timed out"
        return future.result()

    def set_target(self, box_xywh, when: Time | None = None, target_id: int = 0, label: str = ""):
        """Call ~/set_target with an (x, y, w, h) box; ``when`` None: the latest frame."""
        x, y, w, h = box_xywh
        when = when or stamp(0)
        return self.call(self.set_client, SetTarget.Request(center_x=x + w / 2, center_y=y + h / 2,
                                                            size_x=float(w), size_y=float(h), stamp=when,
                                                            target_id=target_id, label=label))

    def stop_target(self, target_id: int = 0):
        return self.call(self.stop_client, StopTarget.Request(target_id=target_id))

    def close(self) -> None:
        for node in (self.node, self.client):
            self.executor.remove_node(node)
            node.destroy_node()

    def set_params(self, **values: Any) -> list:
        return self.node.set_parameters([Parameter(k.replace("__", "."), value=v) for k, v in values.items()])


def make_harness(ros_context, executor, remap: dict[str, str] | None = None, reliable_image: bool = False,
                 **params: Any) -> Harness:
    """Node (random small_cpu weights unless told otherwise) in a namespace of its own, plus the client.

    Parameter names use ``__`` for ``.`` (``tracker__lost_after=2``); ``remap`` holds node remappings;
    ``reliable_image`` overrides the image subscription's sensor-data QoS to reliable (standard override).
    """
    overrides = {"allow_random": True, "autostart_wait": 0.0, **params}
    ns = f"/t{next(_namespaces)}_{int(time.time() * 1000) % 100000}"
    rules = [arg for old, new in (remap or {}).items() for arg in ("-r", f"{old}:={new}")]
    parameters = [Parameter(k.replace("__", "."), value=v) for k, v in overrides.items()]
    if reliable_image:
        parameters.append(Parameter(image_qos_override(ns), value="reliable"))
    node = TrackerNode(context=ros_context, namespace=ns, cli_args=["--ros-args", *rules],
                       parameter_overrides=parameters)
    client = rclpy.create_node("test_client", namespace=ns, context=ros_context)
    executor.add_node(node)
    executor.add_node(client)
    # Autostart runs once the node spins (a timer), so the tests start from its outcome, as before.
    assert spin_until(executor, lambda: not node.autostart_pending, 60.0), "autostart did not run"
    return Harness(executor, node, client)
