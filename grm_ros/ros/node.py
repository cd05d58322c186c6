"""The GRM tracker as a ROS 2 lifecycle node: images in, tracks out, targets set by service or detections.

A thin adapter. The executor thread only converts images and stores them (``LatestFrame`` for the
worker, ``FrameRing`` for requests that name an older frame); one worker thread runs the tracker on the
newest frame and publishes, so frames that arrive faster than inference are dropped, never queued.
Which detections become targets is decided by ``grm_ros.tracking.selection``; tracking itself by
``grm_ros.tracking.Tracker``. Every output carries the header of the image it was computed on.

Lifecycle: configure loads the model on ``device`` (a failure leaves the node unconfigured, with the
reason in the log and on /diagnostics); activate starts the subscriptions and the worker; deactivate
stops them, drops the targets and moves the model off the GPU; ``autostart`` does configure + activate.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

from grm_ros.model import DEFAULT_CHECKPOINT, DEFAULT_VARIANT, load_model, packaged_checkpoint
from grm_ros.msg import TrackArray
from grm_ros.ros import messages
from grm_ros.ros.image_conversion import ImageConverter, compressed_to_rgb, load_cv_bridge
from grm_ros.ros.overlay import draw_tracks
from grm_ros.ros.parameters import PARAMETERS, NodeSettings, settings_from
from grm_ros.srv import SetTarget, StopTarget
from grm_ros.tracking.frames import FrameRing, LatestFrame, StampedFrame
from grm_ros.tracking.selection import Detection, Reacquire, Start, plan
from grm_ros.tracking.state import TrackState
from grm_ros.tracking.tracker import Tracker, TrackResult

NODE_NAME = "grm_tracker"
STATS_WINDOW = 300  # frames behind the fps and latency figures on /diagnostics


class _Stats:
    """Counters for /diagnostics; written by the worker and the executor, read by the diagnostics timer."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: deque[float] = deque(maxlen=STATS_WINDOW)  # s, image stamp -> publish
        self.published: deque[float] = deque(maxlen=STATS_WINDOW)  # monotonic publish times
        self.processed = 0
        self.bad_images = 0
        self.last_bad_image = ""
        self.time_jumps = 0
        self.size_changes = 0
        self.unmatched_detections = 0
        self.tracker_errors = 0

    def record(self, latency: float) -> None:
        with self.lock:
            self.latencies.append(latency)
            self.published.append(time.monotonic())
            self.processed += 1

    def summary(self) -> dict[str, object]:
        with self.lock:
            latencies = np.array(self.latencies) * 1000.0
            stamps = list(self.published)
            values: dict[str, object] = {
                "frames_processed": self.processed, "bad_images": self.bad_images,
                "last_bad_image": self.last_bad_image, "time_jumps_back": self.time_jumps,
                "image_size_changes": self.size_changes,
                "detections_without_frame": self.unmatched_detections, "tracker_errors": self.tracker_errors,
            }
        span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
        values["fps"] = f"{(len(stamps) - 1) / span:.2f}" if span > 0 else "0.00"
        for q in (50, 99):
            values[f"latency_p{q}_ms"] = f"{np.percentile(latencies, q):.1f}" if latencies.size else "n/a"
        return values


class TrackerNode(LifecycleNode):
    """See the module docstring. Parameters: ``grm_ros.ros.parameters.PARAMETERS``."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, spec.descriptor())
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.lifecycle_state = "unconfigured"
        self.error = ""  # why the last configure failed; shown on /diagnostics until a configure succeeds
        self.weights = ""  # where the model's weights came from
        self._settings: NodeSettings | None = None  # the current parameter values
        self._configured: NodeSettings | None = None  # the values of the last successful configure
        self._model: torch.nn.Module | None = None
        self._tracker: Tracker | None = None
        self._tracker_lock = threading.Lock()
        self._slot = LatestFrame()
        self._ring = FrameRing(self.get_parameter("frame_buffer_size").value)
        self._stats = _Stats()
        self._reported: set[tuple[str, str]] = set()
        self._last_size: tuple[int, int] | None = None
        self._subscriptions_active: list[Any] = []
        self._worker: threading.Thread | None = None
        self._running = False
        self._converter = ImageConverter()

        self._tracks_pub = self.create_lifecycle_publisher(TrackArray, "~/tracks", 10)
        self._overlay_pub = self.create_lifecycle_publisher(Image, "~/overlay", 2)
        self._detections_pub = (self.create_lifecycle_publisher(messages.Detection2DArray, "~/detections", 10)
                                if messages.Detection2DArray is not None else None)
        # Diagnostics and services exist in every state, so a failed configure is visible and answered.
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(self.get_parameter("diagnostics_period").value, self.publish_diagnostics)
        self.create_service(SetTarget, "~/set_target", self._on_set_target)
        self.create_service(StopTarget, "~/stop_target", self._on_stop_target)
        self.create_service(Trigger, "~/reset", self._on_reset)

        if self.get_parameter("autostart").value and \
                self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    # ------------------------------------------------------------------ parameters
    def _values(self) -> dict[str, Any]:
        return {spec.name: self.get_parameter(spec.name).value for spec in PARAMETERS}

    def _on_set_parameters(self, params: Sequence[Parameter]) -> SetParametersResult:
        candidate = self._values()
        candidate.update({p.name: p.value for p in params if p.name in candidate})
        try:
            settings = settings_from(candidate)
        except ValueError as err:
            return SetParametersResult(successful=False, reason=str(err))
        self._settings = settings
        self._converter.mono16 = settings.mono16
        later = {spec.name: spec.applies for spec in PARAMETERS if spec.applies in ("configure", "activate")}
        for p in params:
            if p.name in later and self.lifecycle_state != "unconfigured":
                self.get_logger().info(f"{p.name} = {p.value!r} takes effect on the next {later[p.name]}")
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            settings = settings_from(self._values())
            model = load_model(settings.variant, settings.checkpoint, device="cpu",
                               allow_random=settings.allow_random)
            tracker = Tracker(model, settings.tracker, device=settings.device, dtype=settings.dtype)
        except Exception as err:  # any failure must leave the node up and say why
            self.error = f"configure failed: {type(err).__name__}: {err}"
            self.get_logger().error(self.error)
            self.publish_diagnostics()
            return TransitionCallbackReturn.FAILURE
        self._settings = self._configured = settings
        self._model, self._tracker = model, tracker
        self._ring = FrameRing(settings.frame_buffer_size)
        self.error = ""
        self.lifecycle_state = "inactive"
        packaged = packaged_checkpoint(model.cfg.name)
        if settings.checkpoint is None and not (packaged and packaged.is_file()):
            self.weights = "RANDOM weights"
            self.get_logger().warning(f"no checkpoint for GRM {settings.variant} (the packaged model at "
                                      f"{DEFAULT_CHECKPOINT} is {DEFAULT_VARIANT} only) and allow_random is "
                                      "set: it runs with RANDOM weights, its boxes are meaningless")
        else:
            self.weights = str(settings.checkpoint or DEFAULT_CHECKPOINT)
        self.get_logger().info(f"configured: GRM {settings.variant} from {self.weights} on {tracker.device} "
                               f"({settings.dtype})")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        settings, configured = self._settings, self._configured
        with self._tracker_lock:
            if self._tracker is None:  # deactivated earlier: the model went back to the CPU
                try:
                    self._tracker = Tracker(self._model, configured.tracker, device=configured.device,
                                            dtype=configured.dtype)
                except Exception as err:  # e.g. the GPU is full now: stay inactive and say why
                    self.error = f"activate failed: {type(err).__name__}: {err}"
                    self.get_logger().error(self.error)
                    return TransitionCallbackReturn.FAILURE
        bridge = load_cv_bridge() if settings.use_cv_bridge else None
        self._converter = ImageConverter(settings.mono16, bridge)
        qos = QoSProfile(history=qos_profile_sensor_data.history, depth=settings.depth,
                         reliability=ReliabilityPolicy.BEST_EFFORT if settings.reliability == "best_effort"
                         else ReliabilityPolicy.RELIABLE, durability=qos_profile_sensor_data.durability)
        if settings.compressed:
            topic = self.resolve_topic_name("image") + "/compressed"
            self._subscriptions_active.append(self.create_subscription(
                CompressedImage, topic, lambda msg: self._on_image(msg, topic), qos))
        else:
            self._subscriptions_active.append(self.create_subscription(
                Image, "image", lambda msg: self._on_image(msg, "image"), qos))
        if messages.Detection2DArray is not None:
            self._subscriptions_active.append(self.create_subscription(
                messages.Detection2DArray, "detections", self._on_detections, 10))
        self.error = ""
        self._slot.reopen()
        self._running = True
        self._worker = threading.Thread(target=self._work, name="grm_tracker_worker", daemon=True)
        self._worker.start()
        self.lifecycle_state = "active"
        self.get_logger().info(f"active: images on {self.resolve_topic_name('image')}"
                               f"{'/compressed' if settings.compressed else ''} ({self._converter.backend})")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self.lifecycle_state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_model()
        self.lifecycle_state = "unconfigured"
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._release_model()
        self.lifecycle_state = "finalized"
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._release_model()
        self.lifecycle_state = "unconfigured"
        self.get_logger().error(f"error while leaving state {state.label}; back to unconfigured")
        return TransitionCallbackReturn.SUCCESS

    def _stop_processing(self) -> None:
        """Stop subscriptions and worker, drop targets and frames, and free the model's GPU memory."""
        for subscription in self._subscriptions_active:
            self.destroy_subscription(subscription)
        self._subscriptions_active.clear()
        self._running = False
        self._slot.close()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        with self._tracker_lock:
            if self._tracker is not None:
                self._tracker.stop_all()
                self._tracker = None
            if self._model is not None:
                self._model.to("cpu")
        self._ring.clear()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _release_model(self) -> None:
        with self._tracker_lock:
            self._tracker, self._model = None, None
        self._ring.clear()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ------------------------------------------------------------------ input
    def _report_bad_image(self, topic: str, key: str, err: Exception) -> None:
        """Count every bad image; log each kind of failure (error type and encoding) once per topic."""
        with self._stats.lock:
            self._stats.bad_images += 1
            self._stats.last_bad_image = f"{topic}: {err}"
        if (topic, key) not in self._reported:
            self._reported.add((topic, key))
            self.get_logger().error(f"dropping images on {topic}: {err}")

    def _on_image(self, msg: Image | CompressedImage, topic: str) -> None:
        try:
            if isinstance(msg, CompressedImage):
                rgb = compressed_to_rgb(msg.format, msg.data)
            else:
                rgb = self._converter(msg)
        except Exception as err:  # cv_bridge raises its own types; a bad image must never stop the node
            layout = msg.encoding if isinstance(msg, Image) else msg.format
            self._report_bad_image(topic, f"{type(err).__name__} {layout}", err)
            return
        frame = StampedFrame(messages.stamp_to_ns(msg.header.stamp), msg.header.frame_id, rgb,
                             time.monotonic())
        if self._last_size is not None and frame.size != self._last_size:
            self._stats.size_changes += 1
            self.get_logger().info(f"image size changed from {self._last_size} to {frame.size}")
        self._last_size = frame.size
        if self._ring.add(frame):
            self._stats.time_jumps += 1
            self.get_logger().warning(f"image stamp jumped back to {frame.stamp_ns / 1e9:.3f} s "
                                      "(bag loop?): forgot the buffered frames")
        self._slot.put(frame)

    def _on_detections(self, msg: Any) -> None:
        stamp = messages.stamp_to_ns(msg.header.stamp)
        frame = self._ring.latest() if stamp == 0 else self._ring.get(stamp)
        if frame is None:
            self._stats.unmatched_detections += 1
            self.get_logger().warning(f"detections stamped {stamp / 1e9:.3f} s match no buffered frame; "
                                      "ignored", throttle_duration_sec=5.0)
            return
        detections = []
        for d in msg.detections:
            best = max(d.results, key=lambda r: r.hypothesis.score, default=None)
            box = messages.center_to_xywh(d.bbox.center.position.x, d.bbox.center.position.y,
                                          d.bbox.size_x, d.bbox.size_y)
            detections.append(Detection(box, best.hypothesis.class_id if best else "",
                                        best.hypothesis.score if best else 1.0))
        with self._tracker_lock:
            tracker, settings = self._tracker, self._settings
            if tracker is None or settings is None:
                return
            for action in plan(list(tracker.targets.values()), detections, settings.selection, *frame.size):
                try:
                    if isinstance(action, Reacquire):
                        tracker.reacquire(action.target_id, frame.image, action.detection.box)
                        self.get_logger().info(f"target {action.target_id} re-acquired from a detection")
                    elif isinstance(action, Start):
                        target_id = tracker.start(frame.image, action.detection.box,
                                                  label=action.detection.label)
                        self.get_logger().info(f"target {target_id} started from a "
                                               f"{action.detection.label or 'unlabelled'} detection")
                except ValueError as err:
                    self.get_logger().warning(f"detection not used: {err}")

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        while self._running:
            frame = self._slot.take(timeout=0.5)
            if frame is None:
                continue
            with self._tracker_lock:
                if self._tracker is None:
                    continue
                try:
                    results = self._tracker.update(frame.image)
                except Exception as err:  # keep serving: one failed frame must not end tracking
                    self._stats.tracker_errors += 1
                    self.get_logger().error(f"tracker failed on frame {frame.stamp_ns}: {err}",
                                            throttle_duration_sec=5.0)
                    continue
            self._publish(frame, results)

    def _publish(self, frame: StampedFrame, results: list[TrackResult]) -> None:
        header = messages.header_of(frame)
        self._tracks_pub.publish(messages.track_array(header, results))
        if self._detections_pub is not None:
            self._detections_pub.publish(messages.detection_array(header, results))
        if self._overlay_pub.get_subscription_count() > 0:
            self._overlay_pub.publish(messages.image_message(header, draw_tracks(frame.image, results)))
        self._stats.record((self.get_clock().now().nanoseconds - frame.stamp_ns) / 1e9)

    # ------------------------------------------------------------------ services
    def _refusal(self) -> str | None:
        if self.lifecycle_state == "active":
            return None
        because = f" ({self.error})" if self.error else ""
        return f"the tracker node is {self.lifecycle_state}, not active{because}"

    def _on_set_target(self, request: SetTarget.Request, response: SetTarget.Response) -> SetTarget.Response:
        response.success, response.target_id = False, 0
        refusal = self._refusal()
        if refusal:
            response.message = refusal
            return response
        stamp = messages.stamp_to_ns(request.stamp)
        frame = self._ring.latest() if stamp == 0 else self._ring.get(stamp)
        if frame is None:
            stamps = self._ring.stamps()
            buffered = (f"not among the {len(stamps)} buffered frames ({stamps[0] / 1e9:.3f} .. "
                        f"{stamps[-1] / 1e9:.3f} s)" if stamps else "no frames are buffered")
            response.message = ("no image received yet" if stamp == 0 else
                                f"unknown stamp {request.stamp.sec}.{request.stamp.nanosec:09d}: {buffered}")
            return response
        box = messages.center_to_xywh(request.center_x, request.center_y, request.size_x, request.size_y)
        with self._tracker_lock:
            tracker, settings = self._tracker, self._settings
            known = request.target_id in tracker.targets
            if not known and len(tracker.targets) >= settings.selection.max_targets:
                response.message = f"already tracking max_targets = {settings.selection.max_targets} targets"
                return response
            try:
                if known:
                    tracker.reacquire(request.target_id, frame.image, box)
                    target_id = request.target_id
                else:
                    target_id = tracker.start(frame.image, box, target_id=request.target_id or None,
                                              label=request.label)
            except ValueError as err:
                response.message = f"refused: {err}"
                return response
        width, height = frame.size
        response.success, response.target_id = True, target_id
        response.message = (f"{'restarted' if known else 'tracking'} target {target_id} from the "
                            f"{width}x{height} frame stamped {frame.stamp_ns / 1e9:.3f} s")
        return response

    def _on_stop_target(self, request: StopTarget.Request,
                        response: StopTarget.Response) -> StopTarget.Response:
        refusal = self._refusal()
        if refusal:
            response.success, response.message, response.stopped = False, refusal, 0
            return response
        with self._tracker_lock:
            if request.target_id == 0:
                response.stopped = self._tracker.stop_all()
                response.success, response.message = True, f"stopped all {response.stopped} targets"
            else:
                response.success = self._tracker.stop(request.target_id)
                response.stopped = int(response.success)
                tracked = sorted(self._tracker.targets)
                response.message = (f"stopped target {request.target_id}" if response.success else
                                    f"no target {request.target_id} (tracked: {tracked})")
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        refusal = self._refusal()
        if refusal:
            response.success, response.message = False, refusal
            return response
        with self._tracker_lock:
            stopped = self._tracker.stop_all()
        buffered = len(self._ring)
        self._ring.clear()
        self._slot.clear()
        response.success = True
        response.message = f"stopped {stopped} targets and forgot {buffered} buffered frames"
        return response

    # ------------------------------------------------------------------ diagnostics
    def publish_diagnostics(self) -> None:
        values = self._stats.summary()
        values.update(state=self.lifecycle_state, weights=self.weights, frames_received=self._slot.received,
                      frames_dropped=self._slot.dropped, frames_buffered=len(self._ring))
        with self._tracker_lock:
            targets = list(self._tracker.targets.values()) if self._tracker is not None else []
            device = str(self._tracker.device) if self._tracker is not None else self.get_parameter(
                "device").value
        counts = {s: sum(t.state is s for t in targets) for s in (TrackState.TRACKING, TrackState.LOST)}
        values.update(targets=len(targets), targets_tracking=counts[TrackState.TRACKING],
                      targets_lost=counts[TrackState.LOST])
        if self.error:
            level, message = DiagnosticStatus.ERROR, self.error
        elif self.lifecycle_state != "active":
            level, message = DiagnosticStatus.WARN, f"{self.lifecycle_state}: not processing images"
        else:
            level = DiagnosticStatus.OK
            message = (f"active: {len(targets)} targets ({counts[TrackState.TRACKING]} tracking, "
                       f"{counts[TrackState.LOST]} lost), {values['fps']} fps")
        name = f"{self.get_fully_qualified_name()}: tracker"
        self._diagnostics_pub.publish(messages.diagnostics(self.get_clock().now().to_msg(), name, device,
                                                           level, message, values))

    def destroy_node(self) -> None:
        self._stop_processing()
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ros2 run grm_ros tracker_node`` and ``grm-tracker-node``.

    The DDS domain and discovery range are the user's (environment): on a robot the node must join
    the graph it was launched into. Tests, the demo and the benchmarks isolate themselves.
    """
    rclpy.init(args=argv)
    node = TrackerNode()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
