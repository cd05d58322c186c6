"""The GRM tracker as a ROS 2 lifecycle node: images in, tracks out, targets set by service or detections.

A thin adapter. The executor thread only converts images and stores them (``LatestFrame`` for the
worker, ``FrameRing`` for requests that name an older frame); one worker thread runs the tracker on the
newest frame and publishes, so frames that arrive faster than inference are dropped, never queued.
Which detections become targets is decided by ``grm_ros.tracking.selection``; tracking itself by
``grm_ros.tracking.Tracker``. Every output carries the header of the image it was computed on.

Lifecycle: configure loads the model into an ``InferenceEngine`` (device, dtype, threads, backend; a
failure leaves the node unconfigured, with the reason in the log and on /diagnostics); activate starts the
subscriptions and the worker; deactivate stops them and drops the targets; cleanup and shutdown release
the engine (and its GPU memory); ``autostart`` does configure + activate
once the node spins, where launch's lifecycle handlers see them. A start-up parameter value outside the
table (type, range, choices) ends the process with one line and exit status 2 (``main``).
"""

from __future__ import annotations

import copy
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.signals import SignalHandlerOptions
from rclpy.subscription import MessageInfo
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

from grm_ros.model import DEFAULT_VARIANT, load_model, weights_file
from grm_ros.model.engine import InferenceEngine
from grm_ros.msg import TrackArray
from grm_ros.ros import messages
from grm_ros.ros.frames import FrameRing, LatestFrame, SequenceGaps, StampedFrame
from grm_ros.ros.image_conversion import ImageConverter, compressed_to_rgb, load_cv_bridge
from grm_ros.ros.overlay import draw_tracks
from grm_ros.ros.parameters import PARAMETERS, NodeSettings, settings_from
from grm_ros.srv import SetTarget, StopTarget
from grm_ros.tools.division_maps import PREDICTION_COLOR, Division, DivisionProbe, crossing_montage
from grm_ros.tracking.geometry import check_frame_size
from grm_ros.tracking.selection import Detection, Reacquire, Start, plan
from grm_ros.tracking.state import TrackState
from grm_ros.tracking.tracker import Tracker, TrackResult, tracker_for

NODE_NAME = "grm_tracker"
# Autostart: polled every AUTOSTART_POLL s; it waits AUTOSTART_SETTLE s after a ~/transition_event
# subscriber appears in the graph (endpoint matching may lag), at most the autostart_wait parameter in all.
AUTOSTART_POLL, AUTOSTART_SETTLE = 0.05, 0.5
# Every topic's QoS is open to rclpy's standard qos_overrides.<topic>.<publisher|subscription>.<policy>
# parameters (reliability, history, depth), as in image_pipeline and the camera drivers.
QOS_OVERRIDES = QoSOverridingOptions.with_default_policies()


def sensor_qos() -> QoSProfile:
    """A fresh copy of the sensor-data profile: rclpy writes the ``qos_overrides`` values into the profile
    it is given, so passing the shared ``qos_profile_sensor_data`` would leak one node's override into every
    later subscription of the process (measured: the next node's image subscription came up reliable)."""
    return copy.copy(qos_profile_sensor_data)
STATS_WINDOW = 300  # frames behind the fps and latency figures on /diagnostics


class _Stats:
    """Counters for /diagnostics; written by the worker and the executor, read by the diagnostics timer."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: deque[float] = deque(maxlen=STATS_WINDOW)  # s, image stamp -> publish
        self.published: deque[float] = deque(maxlen=STATS_WINDOW)  # monotonic publish times
        self.steps: deque[float] = deque(maxlen=STATS_WINDOW)  # s, one tracker step (all targets)
        self.processed = 0
        self.bad_images = 0
        self.last_bad_image = ""
        self.time_jumps = 0
        self.size_changes = 0
        self.detection_messages = 0
        self.unmatched_detections = 0
        self.tracker_errors = 0
        self.targets_failed = 0

    def record(self, latency: float, step: float) -> None:
        with self.lock:
            self.latencies.append(latency)
            self.steps.append(step)
            self.published.append(time.monotonic())
            self.processed += 1

    def summary(self) -> dict[str, object]:
        with self.lock:
            latencies = np.array(self.latencies) * 1000.0
            stamps = list(self.published)
            steps = list(self.steps)
            values: dict[str, object] = {
                "frames_processed": self.processed, "bad_images": self.bad_images,
                "last_bad_image": self.last_bad_image, "time_jumps_back": self.time_jumps,
                "image_size_changes": self.size_changes,
                "detection_messages": self.detection_messages,
                "detections_without_frame": self.unmatched_detections, "tracker_errors": self.tracker_errors,
                "targets_failed": self.targets_failed,
            }
        span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
        values["fps"] = f"{(len(stamps) - 1) / span:.2f}" if span > 0 else "0.00"
        # The tracker's own rate, 1 / mean step time: what it could keep up with, whatever the camera's rate.
        values["tracker_fps"] = f"{len(steps) / sum(steps):.1f}" if steps and sum(steps) > 0 else "n/a"
        for q in (50, 99):
            values[f"latency_p{q}_ms"] = f"{np.percentile(latencies, q):.1f}" if latencies.size else "n/a"
        return values


def image_qos_override(namespace: str, policy: str = "reliability") -> str:
    """The standard QoS override parameter of the image subscription of a node in ``namespace``."""
    return f"qos_overrides.{namespace.rstrip('/')}/image.subscription.{policy}"


class BadParameter(ValueError):
    """A start-up parameter value that ROS refuses; the message is the one line the process exits with."""


class TrackerNode(LifecycleNode):
    """See the module docstring. Parameters: ``grm_ros.ros.parameters.PARAMETERS``."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for spec in PARAMETERS:
            try:  # ROS checks type and range; check() also the choices, which descriptors cannot express
                spec.check(self.declare_parameter(spec.name, spec.default, spec.descriptor()).value)
            except (ParameterException, ValueError) as err:  # refused: a params file's or -p value
                given = self._parameter_overrides.get(spec.name)
                super().destroy_node()  # ours needs the worker state, which does not exist yet
                raise BadParameter(spec.refusal(given.value if given else None)) from err
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.lifecycle_state = "unconfigured"
        self.error = ""  # why the last configure failed; shown on /diagnostics until a configure succeeds
        self.weights = ""  # where the model's weights came from
        self._settings: NodeSettings | None = None  # the current parameter values
        self._engine: InferenceEngine | None = None
        self._tracker: Tracker | None = None
        self._probe: DivisionProbe | None = None  # with debug.division: reads the tracker's division
        self._tracker_lock = threading.Lock()
        self._slot = LatestFrame()
        self._ring = FrameRing(self.get_parameter("frame_buffer_size").value)
        self._stats = _Stats()
        self._gaps = SequenceGaps()
        self._reported: set[tuple[str, str]] = set()
        self._last_size: tuple[int, int] | None = None
        self._subscriptions_active: list[Any] = []
        self._worker: threading.Thread | None = None
        self._running = False
        self._converter = ImageConverter()

        self._tracks_pub = self.create_lifecycle_publisher(TrackArray, "~/tracks", 10,
                                                           qos_overriding_options=QOS_OVERRIDES)
        self._overlay_pub = self.create_lifecycle_publisher(Image, "~/overlay", 2,
                                                            qos_overriding_options=QOS_OVERRIDES)
        self._division_pub = self.create_lifecycle_publisher(Image, "~/division", 2,
                                                             qos_overriding_options=QOS_OVERRIDES)
        self._detections_pub = (self.create_lifecycle_publisher(messages.Detection2DArray, "~/detections", 10,
                                                                qos_overriding_options=QOS_OVERRIDES)
                                if messages.Detection2DArray is not None else None)
        # Diagnostics and services exist in every state, so a failed configure is visible and answered.
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(self.get_parameter("diagnostics_period").value, self.publish_diagnostics)
        self.create_service(SetTarget, "~/set_target", self._on_set_target)
        self.create_service(StopTarget, "~/stop_target", self._on_stop_target)
        self.create_service(Trigger, "~/reset", self._on_reset)

        # Autostart runs from a timer, once the node spins, so that its transitions are published where
        # launch can see them: launch_ros subscribes to ~/transition_event before it starts the process.
        self.autostart_pending = bool(self.get_parameter("autostart").value)
        self._autostart_deadline = time.monotonic() + self.get_parameter("autostart_wait").value
        self._listener_since: float | None = None
        if self.autostart_pending:
            self._autostart_timer = self.create_timer(AUTOSTART_POLL, self._autostart)

    def _autostart(self) -> None:
        """Configure and activate, once a listener on ~/transition_event has had AUTOSTART_SETTLE s to
        match the event publisher, or after the grace when nobody listens."""
        now = time.monotonic()
        if self._listener_since is None and self.count_subscribers(
                f"{self.get_fully_qualified_name()}/transition_event"):
            self._listener_since = now
        heard = self._listener_since is not None and now - self._listener_since >= AUTOSTART_SETTLE
        if not heard and now < self._autostart_deadline:
            return
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()
        self.autostart_pending = False

    # ------------------------------------------------------------------ parameters
    def _values(self) -> dict[str, Any]:
        return {spec.name: self.get_parameter(spec.name).value for spec in PARAMETERS}

    def _on_set_parameters(self, params: Sequence[Parameter]) -> SetParametersResult:
        candidate = self._values()
        if not any(p.name in candidate for p in params):  # rclpy's own (use_sim_time, qos_overrides.*)
            return SetParametersResult(successful=True)
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
            weights = weights_file(settings.variant, settings.checkpoint)
            model = load_model(settings.variant, settings.checkpoint, allow_random=settings.allow_random)
            tracker = tracker_for(model, settings.tracker, settings.engine)
            probe = DivisionProbe(tracker) if settings.division else None
        except Exception as err:  # any failure must leave the node up and say why
            self.error = f"configure failed: {type(err).__name__}: {err}"
            self.get_logger().error(self.error)
            self.publish_diagnostics()
            return TransitionCallbackReturn.FAILURE
        self._settings = settings
        self._engine, self._tracker = tracker.engine, tracker
        self._probe = probe
        self._ring = FrameRing(settings.frame_buffer_size)
        self.error = ""
        self.lifecycle_state = "inactive"
        if weights is None:
            self.weights = "RANDOM weights"
            self.get_logger().warning(f"no checkpoint for GRM {settings.variant} (it ships no packaged "
                                      f"model; {DEFAULT_VARIANT} does) and allow_random is set: it runs "
                                      "with RANDOM weights, its boxes are meaningless")
        else:
            self.weights = str(weights)
        engine = tracker.engine
        self.get_logger().info(f"configured: GRM {settings.variant} from {self.weights} on {engine.device} "
                               f"({settings.engine.dtype}, backend {engine.backend}, {engine.threads} "
                               "thread(s))")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        settings = self._settings
        bridge = load_cv_bridge() if settings.use_cv_bridge else None
        self._converter = ImageConverter(settings.mono16, bridge)
        # Sensor-data QoS by default; rclpy's standard parameters override it per topic, e.g.
        # qos_overrides./image.subscription.reliability:=reliable (read at the first activate).
        if settings.compressed:
            topic = self.resolve_topic_name("image") + "/compressed"
            self._subscriptions_active.append(self.create_subscription(
                CompressedImage, topic, lambda msg, info: self._on_image(msg, topic, info),
                sensor_qos(), qos_overriding_options=QOS_OVERRIDES))
        else:
            self._subscriptions_active.append(self.create_subscription(
                Image, "image", lambda msg, info: self._on_image(msg, "image", info), sensor_qos(),
                qos_overriding_options=QOS_OVERRIDES))
        self._gaps.forget_publishers()
        if messages.Detection2DArray is not None:
            self._subscriptions_active.append(self.create_subscription(
                messages.Detection2DArray, "detections", self._on_detections, 10,
                qos_overriding_options=QOS_OVERRIDES))
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
        self._release_engine()
        self.lifecycle_state = "unconfigured"
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._release_engine()
        self.lifecycle_state = "finalized"
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._release_engine()
        self.lifecycle_state = "unconfigured"
        self.get_logger().error(f"error while leaving state {state.label}; back to unconfigured")
        return TransitionCallbackReturn.SUCCESS

    def _stop_processing(self) -> None:
        """Stop subscriptions and worker, drop targets and frames; the engine stays for the next activate."""
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
        self._ring.clear()

    def _release_engine(self) -> None:
        with self._tracker_lock:
            if self._engine is not None:
                self._engine.release()
            self._tracker, self._engine, self._probe = None, None, None
        self._ring.clear()

    # ------------------------------------------------------------------ input
    def _report_bad_image(self, topic: str, key: str, err: Exception) -> None:
        """Count every bad image; log each kind of failure (error type and encoding) once per topic."""
        with self._stats.lock:
            self._stats.bad_images += 1
            self._stats.last_bad_image = f"{topic}: {err}"
        if (topic, key) not in self._reported:
            self._reported.add((topic, key))
            self.get_logger().error(f"dropping images on {topic}: {err}")

    def _on_image(self, msg: Image | CompressedImage, topic: str, info: MessageInfo) -> None:
        gid = info.get("publisher_gid")
        self._gaps.see(bytes(gid["data"]) if gid else b"", info.get("publication_sequence_number"))
        try:
            messages.check_stamp(msg.header.stamp)
            if isinstance(msg, CompressedImage):
                rgb = compressed_to_rgb(msg.format, msg.data)
            else:
                rgb = self._converter(msg)
            check_frame_size(*rgb.shape[:2])
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
        self._stats.detection_messages += 1
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
                    started = time.perf_counter()
                    results, divisions = self._update(frame.image)
                    step = time.perf_counter() - started
                except Exception as err:  # keep serving: one failed frame must not end tracking
                    self._stats.tracker_errors += 1
                    self.get_logger().error(f"tracker failed on frame {frame.stamp_ns}: {err}",
                                            throttle_duration_sec=5.0)
                    continue
            self._report_failed_targets(results)
            try:
                self._publish(frame, results, step, divisions)
            except Exception:
                if self.context.ok():
                    raise
                return  # someone shut the context down under a running node: nothing left to publish to

    def _update(self, image: np.ndarray) -> tuple[list[TrackResult], dict[int, Division]]:
        """The tracker's update; through the division probe while debug.division is on and ~/division has
        a subscriber, so the division is read only on demand (under the tracker lock)."""
        probe = self._probe
        if probe is None or self._division_pub.get_subscription_count() == 0:
            return self._tracker.update(image), {}
        with probe.attached():
            return probe.update(image)

    def _report_failed_targets(self, results: list[TrackResult]) -> None:
        """Count and log each target the tracker stopped this frame (its result says why)."""
        for r in results:
            if r.reason:
                with self._stats.lock:
                    self._stats.targets_failed += 1
                label = f" ({r.label})" if r.label else ""
                self.get_logger().error(f"target {r.target_id}{label} stopped: {r.reason}")

    def _publish(self, frame: StampedFrame, results: list[TrackResult], step: float,
                 divisions: dict[int, Division]) -> None:
        header = messages.header_of(frame)
        self._tracks_pub.publish(messages.track_array(header, results))
        if self._detections_pub is not None:
            self._detections_pub.publish(messages.detection_array(header, results))
        if self._overlay_pub.get_subscription_count() > 0:
            self._overlay_pub.publish(messages.image_message(header, draw_tracks(frame.image, results)))
        if divisions:
            first = min(divisions)
            region, layers = divisions[first]
            box = next((r.box for r in results if r.target_id == first), None)
            image = crossing_montage(frame.image, region, layers, [(box, PREDICTION_COLOR)],
                                     f"target {first}")
            self._division_pub.publish(messages.image_message(header, image))
        self._stats.record((self.get_clock().now().nanoseconds - frame.stamp_ns) / 1e9, step)

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
        gaps = self._gaps
        missed = gaps.missed if gaps.numbered or not self._slot.received else "n/a (no sequence numbers)"
        values.update(state=self.lifecycle_state, weights=self.weights, frames_received=self._slot.received,
                      frames_missed=missed, frames_dropped=self._slot.dropped,
                      frames_buffered=len(self._ring))
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
    SIGINT and SIGTERM only end the spin loop: the node (its worker first) is destroyed while the context
    is still valid, and ROS is shut down after that, so a signal mid-stream leaves no traceback. (rclpy's
    own handlers would shut the context down first, under a worker that is about to publish.)
    """
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = TrackerNode()
    except BadParameter as err:  # before anything started: exit with the one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.1)
    except ExternalShutdownException:
        pass
    finally:
        node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
