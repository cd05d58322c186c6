"""The operator page's ROS side: one rclpy node that watches a tracker node and calls its services.

It subscribes to the tracker's ``~/overlay`` and ``~/tracks`` only while some page is open
(``watch``), because the tracker draws overlays only while someone subscribes; /diagnostics it always
follows, for the node's state, fps and latency. Everything runs on the bridge's own executor thread
and leaves it as plain values (JPEG bytes, dicts), so the web side never touches rclpy objects.
"""

from __future__ import annotations

import concurrent.futures
import math
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from grm_ros.msg import TrackArray
from grm_ros.ros.image_conversion import raw_to_rgb
from grm_ros.ros.messages import center_to_xywh, stamp_to_ns, xywh_to_center
from grm_ros.srv import SetTarget, StopTarget
from grm_ros.tracking.state import TrackState

TRANSITIONS = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
               "deactivate": Transition.TRANSITION_DEACTIVATE, "cleanup": Transition.TRANSITION_CLEANUP}
# Reliable: over loopback DDS, best-effort delivery lost about half of the large frames (README).
OVERLAY_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


class BadRequest(ValueError):
    """A page asked for something malformed; the message says what."""


@dataclass(frozen=True)
class Frame:
    """One overlay image as JPEG, with the stamp of the camera image it was drawn on."""

    stamp_ns: int
    jpeg: bytes

    def packet(self) -> bytes:
        """What the page receives: sec and nanosec (little-endian uint32 each), then the JPEG."""
        sec, nanosec = divmod(self.stamp_ns, 1_000_000_000)
        return struct.pack("<II", sec, nanosec) + self.jpeg


class Listener(Protocol):
    """Where the bridge hands what it sees; called on the bridge's thread."""

    def frame(self, frame: Frame) -> None: ...

    def tracks(self, tracks: dict[str, Any]) -> None: ...

    def status(self, status: dict[str, Any]) -> None: ...


def _number(args: dict[str, Any], key: str) -> float:
    value = args.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"{key} must be a finite number, got {value!r}")
    return float(value)


def _stamp(args: dict[str, Any]) -> tuple[int, int]:
    stamp = args.get("stamp")
    if not isinstance(stamp, dict):
        raise BadRequest(f"stamp must be {{sec, nanosec}}, got {stamp!r}")
    sec, nanosec = stamp.get("sec"), stamp.get("nanosec")
    if not (isinstance(sec, int) and isinstance(nanosec, int) and 0 <= sec < 2**31 and 0 <= nanosec < 10**9):
        raise BadRequest(f"stamp must be {{sec, nanosec}} integers, got {stamp!r}")
    return sec, nanosec


class OperatorBridge:
    """See the module docstring. ``tracker`` is the tracker node's fully qualified name."""

    def __init__(self, tracker: str, listener: Listener, context: Context | None = None,
                 jpeg_quality: int = 80, node_name: str = "grm_operator") -> None:
        if not tracker.startswith("/"):
            raise ValueError(f"tracker node name must be fully qualified (/namespace/name), got {tracker!r}")
        self.tracker = tracker.rstrip("/")
        self.status_name = f"{self.tracker}: tracker"
        self._listener = listener
        self._jpeg = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
        self.node = rclpy.create_node(node_name, context=context, start_parameter_services=False)
        self._executor = SingleThreadedExecutor(context=context)
        self._executor.add_node(self.node)
        self._wanted = False
        self._watching: list[Any] = []
        self.node.create_timer(0.1, self._reconcile)  # subscriptions change on the executor thread only
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self._clients = {
            "set_target": self.node.create_client(SetTarget, f"{self.tracker}/set_target"),
            "stop_target": self.node.create_client(StopTarget, f"{self.tracker}/stop_target"),
            "reset": self.node.create_client(Trigger, f"{self.tracker}/reset"),
            "lifecycle": self.node.create_client(ChangeState, f"{self.tracker}/change_state"),
        }
        self._running = True
        self._thread = threading.Thread(target=self._spin, name="grm_operator_ros", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self._running:
            self._executor.spin_once(timeout_sec=0.1)

    def close(self) -> None:
        self._running = False
        self._thread.join()
        self._executor.remove_node(self.node)
        self.node.destroy_node()
        self._executor.shutdown()

    # ------------------------------------------------------------------ watching
    def watch(self, wanted: bool) -> None:
        """Follow the overlay and tracks (a page is open) or stop (none is)."""
        self._wanted = wanted

    @property
    def watching(self) -> bool:
        return bool(self._watching)

    def _reconcile(self) -> None:
        if self._wanted and not self._watching:
            overlay = self.node.create_subscription(Image, f"{self.tracker}/overlay", self._on_overlay,
                                                    OVERLAY_QOS)
            tracks = self.node.create_subscription(TrackArray, f"{self.tracker}/tracks", self._on_tracks, 10)
            self._watching = [overlay, tracks]
        elif not self._wanted and self._watching:
            for subscription in self._watching:
                self.node.destroy_subscription(subscription)
            self._watching = []

    def _on_overlay(self, msg: Image) -> None:
        rgb = raw_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data, bool(msg.is_bigendian))
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), self._jpeg)
        if ok:
            self._listener.frame(Frame(stamp_to_ns(msg.header.stamp), jpeg.tobytes()))

    def _on_tracks(self, msg: TrackArray) -> None:
        tracks = [{"id": t.id, "state": TrackState(t.state).name.lower(), "label": t.label,
                   "confidence": round(float(t.confidence), 4), "age": t.age,
                   "box": [round(v, 2) for v in center_to_xywh(t.center_x, t.center_y, t.size_x, t.size_y)]}
                  for t in msg.tracks]
        self._listener.tracks({"type": "tracks", "stamp_ns": stamp_to_ns(msg.header.stamp), "tracks": tracks})

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == self.status_name:
                level = int.from_bytes(status.level, "little")  # a byte field arrives as bytes
                self._listener.status({"type": "status", "level": level, "message": status.message,
                                       "values": {v.key: v.value for v in status.values}})

    # ------------------------------------------------------------------ services
    def _request(self, op: str, args: dict[str, Any]) -> Any:
        if op == "set_target":
            x, y, w, h = (_number(args, k) for k in ("x", "y", "w", "h"))
            sec, nanosec = _stamp(args)
            cx, cy, sx, sy = xywh_to_center((x, y, w, h))
            request = SetTarget.Request(center_x=cx, center_y=cy, size_x=sx, size_y=sy,
                                        label=str(args.get("label", "")))
            request.stamp.sec, request.stamp.nanosec = sec, nanosec
            return request
        if op == "stop_target":
            target_id = args.get("target_id")
            if isinstance(target_id, bool) or not isinstance(target_id, int) or not 0 <= target_id < 2**32:
                raise BadRequest(f"target_id must be an id >= 0 (0: all), got {target_id!r}")
            return StopTarget.Request(target_id=target_id)
        if op == "reset":
            return Trigger.Request()
        if op == "lifecycle":
            transition = args.get("transition")
            if transition not in TRANSITIONS:
                raise BadRequest(f"transition must be one of {sorted(TRANSITIONS)}, got {transition!r}")
            return ChangeState.Request(transition=Transition(id=TRANSITIONS[transition], label=transition))
        raise BadRequest(f"unknown operation {op!r}; known: {sorted(self._clients)}")

    def call(self, op: str, args: dict[str, Any]) -> concurrent.futures.Future[dict[str, Any]]:
        """Call one of the tracker's services; the future holds ``success`` and the node's ``message``.

        A malformed request raises ``BadRequest``; a service that is not up answers at once.
        """
        request = self._request(op, args)
        client = self._clients[op]
        done: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        if not client.service_is_ready():
            done.set_result({"success": False, "message": f"service {client.srv_name} is not available: "
                                                          f"is the tracker node {self.tracker} running?"})
            return done
        convert = _REPLIES[op]

        def finish(future: Any) -> None:
            error = future.exception()
            done.set_result({"success": False, "message": f"{op} failed: {error}"} if error is not None
                            else convert(future.result(), args))

        client.call_async(request).add_done_callback(finish)
        return done


def _lifecycle_reply(response: ChangeState.Response, args: dict[str, Any]) -> dict[str, Any]:
    """ChangeState carries no message: say what happened; the node's reason is on its status line."""
    name = args["transition"]
    if response.success:
        return {"success": True, "message": f"{name}: done"}
    return {"success": False, "message": f"{name}: refused or failed (see the node status)"}


_REPLIES: dict[str, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {
    "set_target": lambda r, _: {"success": r.success, "message": r.message, "target_id": r.target_id},
    "stop_target": lambda r, _: {"success": r.success, "message": r.message, "stopped": r.stopped},
    "reset": lambda r, _: {"success": r.success, "message": r.message},
    "lifecycle": _lifecycle_reply,
}
