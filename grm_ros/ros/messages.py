"""Tracker results to ROS messages. Every message carries the header of the image it was computed on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from grm_ros.msg import Track, TrackArray
from grm_ros.ros.frames import StampedFrame
from grm_ros.ros.image_conversion import rgb_to_raw
from grm_ros.tracking.tracker import TrackResult

try:  # vision_msgs is optional: a ROS install may lack it; the node then skips its detection topics
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose
except ImportError:
    Detection2DArray = None

NS = 1_000_000_000


class StampError(ValueError):
    """A header stamp outside builtin_interfaces/Time's valid range (``check_stamp``)."""


def check_stamp(stamp: Time) -> None:
    """Refuse a stamp whose nanosec is not below 1e9: the node echoes stamps through ``stamp_to_ns`` and
    ``ns_to_stamp``, which are inverses only on valid stamps (and near the end of int32 seconds the
    normalised stamp would not even fit the message)."""
    if stamp.nanosec >= NS:
        raise StampError(f"header stamp {stamp.sec} s + {stamp.nanosec} ns is invalid: nanosec must be "
                         "below 1e9")


def stamp_to_ns(stamp: Time) -> int:
    return int(stamp.sec) * NS + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    return Time(sec=ns // NS, nanosec=ns % NS)


def header_of(frame: StampedFrame) -> Header:
    return Header(stamp=ns_to_stamp(frame.stamp_ns), frame_id=frame.frame_id)


def xywh_to_center(box: Sequence[float]) -> tuple[float, float, float, float]:
    """(x, y, w, h) -> (center_x, center_y, size_x, size_y), as vision_msgs/BoundingBox2D has it."""
    x, y, w, h = (float(v) for v in box)
    return x + w / 2, y + h / 2, w, h


def center_to_xywh(cx: float, cy: float, sx: float, sy: float) -> tuple[float, float, float, float]:
    return cx - sx / 2, cy - sy / 2, sx, sy


def track_array(header: Header, results: Iterable[TrackResult]) -> TrackArray:
    tracks = []
    for r in results:
        cx, cy, sx, sy = xywh_to_center(r.box)
        tracks.append(Track(header=header, id=r.target_id, state=int(r.state), label=r.label, center_x=cx,
                            center_y=cy, size_x=sx, size_y=sy, confidence=float(r.confidence),
                            age=r.age))
    return TrackArray(header=header, tracks=tracks)


def detection_array(header: Header, results: Iterable[TrackResult]):
    """vision_msgs/Detection2DArray: id = track id, class = the track's label, score = its confidence."""
    detections = []
    for r in results:
        detection = Detection2D(header=header, id=str(r.target_id))
        cx, cy, detection.bbox.size_x, detection.bbox.size_y = xywh_to_center(r.box)
        detection.bbox.center.position.x, detection.bbox.center.position.y = cx, cy
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id, hypothesis.hypothesis.score = r.label, float(r.confidence)
        detection.results.append(hypothesis)
        detections.append(detection)
    return Detection2DArray(header=header, detections=detections)


def image_message(header: Header, rgb: np.ndarray) -> Image:
    height, width, step, data = rgb_to_raw(rgb)
    return Image(header=header, height=height, width=width, encoding="rgb8", is_bigendian=0, step=step,
                 data=data)


def diagnostics(header_stamp: Time, name: str, hardware_id: str, level: int, message: str,
                values: Mapping[str, object]) -> DiagnosticArray:
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
    return DiagnosticArray(header=Header(stamp=header_stamp), status=[status])
