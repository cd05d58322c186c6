"""`make demo`: the tracker node in its own process, fed a held-out synthetic video like a camera would.

The video comes from ``grm_ros.datasets.synthetic`` (held-out split: objects and backgrounds that
training never saw; material from Debian packages, or procedural stand-ins). The demo starts the node
(``python -m grm_ros.ros.node``), plays the frames at a fixed rate, sets the target on the first frame
with the ~/set_target service, records ~/tracks, and writes an annotated video, a montage and the
tracks under ``out/demo/``. It prints fps, latency and IoU against the generated ground truth.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from grm_ros.boxes import box_iou
from grm_ros.datasets.synthetic import SyntheticVideo, SynthParams
from grm_ros.model import DEFAULT_VARIANT, weights_file
from grm_ros.msg import TrackArray
from grm_ros.ros.frames import StampedFrame
from grm_ros.ros.isolation import isolate_ros_environment
from grm_ros.ros.messages import header_of, image_message, stamp_to_ns, xywh_to_center
from grm_ros.ros.node import NODE_NAME, image_qos_override
from grm_ros.ros.overlay import COLORS, draw_box
from grm_ros.srv import SetTarget
from grm_ros.tracking.state import TrackState

NAMESPACE = "/demo"
GT_COLOR = (255, 255, 255)


@dataclass
class Played:
    """What came back for one played frame (``box`` None: the node dropped the frame or lost the target)."""

    stamp_ns: int
    box: tuple[float, float, float, float] | None = None
    state: int = 0
    confidence: float = 0.0
    latency: float | None = None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=80, help="length of the demo video")
    parser.add_argument("--fps", type=float, default=10.0, help="rate at which frames are played")
    parser.add_argument("--index", type=int, default=0, help="which held-out synthetic video")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--checkpoint", default="", help="GRM checkpoint; default: the packaged model")
    parser.add_argument("--variant", default=DEFAULT_VARIANT)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    args = parser.parse_args(argv)
    if args.frames < 2 or args.fps <= 0:
        parser.error("--frames must be >= 2 and --fps > 0")
    return args


def start_node(args: argparse.Namespace, random_weights: bool, log_path: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "grm_ros.ros.node", "--ros-args", "-r", f"__ns:={NAMESPACE}",
               "-p", f"variant:={args.variant}", "-p", f"device:={args.device}",
               "-p", f"allow_random:={str(random_weights).lower()}",
               "-p", f"{image_qos_override(NAMESPACE)}:=reliable", "-p", "autostart_wait:=0.0"]
    if args.checkpoint:  # an empty value does not parse on the command line; empty is the default anyway
        command += ["-p", f"checkpoint:={args.checkpoint}"]
    with log_path.open("w") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT)


def play(args: argparse.Namespace, video: SyntheticVideo,
         node_proc: subprocess.Popen) -> tuple[list[Played], str, dict[str, str]]:
    """Play the video into the node; returns what came back per frame, the set_target reply and the
    values of the node's latest /diagnostics status."""
    rclpy.init()
    node = rclpy.create_node("grm_demo_player")
    played: dict[int, Played] = {}  # by frame index
    by_stamp: dict[int, Played] = {}
    prefix = f"{NAMESPACE}/{NODE_NAME}"
    status: dict[str, str] = {}

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for s in msg.status:
            if s.name == f"{prefix}: tracker":
                status.update((v.key, v.value) for v in s.values)

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)

    def on_tracks(msg: TrackArray) -> None:
        entry = by_stamp.get(stamp_to_ns(msg.header.stamp))
        if entry is None or not msg.tracks:
            return
        t = msg.tracks[0]
        entry.box = (t.center_x - t.size_x / 2, t.center_y - t.size_y / 2, t.size_x, t.size_y)
        entry.state, entry.confidence = t.state, t.confidence
        entry.latency = (node.get_clock().now().nanoseconds - entry.stamp_ns) / 1e9

    node.create_subscription(TrackArray, f"{prefix}/tracks", on_tracks, 50)
    # Reliable, not sensor-data QoS: with discovery confined to localhost, Fast DDS carries the 690 kB
    # frames over UDP loopback, where best-effort delivery lost about half of them (measured here).
    images = node.create_publisher(Image, f"{NAMESPACE}/image",
                                   QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE))
    set_target = node.create_client(SetTarget, f"{prefix}/set_target")

    def spin_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=min(0.02, max(0.0, end - time.monotonic())))

    def message(k: int) -> Image:
        frame = StampedFrame(node.get_clock().now().nanoseconds, "demo_camera", video.frame(k))
        played[k] = by_stamp[frame.stamp_ns] = Played(frame.stamp_ns)
        return image_message(header_of(frame), frame.image)

    deadline = time.monotonic() + 120
    while not set_target.wait_for_service(timeout_sec=0.5):
        if node_proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the tracker node did not come up (see {args.out / 'node.log'})")
    first = int(np.flatnonzero(video.visible)[0])
    cx, cy, sx, sy = xywh_to_center(video.gt[first])
    reply = None
    while reply is None or not reply.success:  # the first frames may go before discovery completes
        if time.monotonic() > deadline:
            raise RuntimeError(f"set_target kept failing: {reply.message if reply else 'no reply'}")
        images.publish(message(first))
        spin_for(0.2)
        request = SetTarget.Request(center_x=cx, center_y=cy, size_x=sx, size_y=sy, label="target")
        request.stamp.sec, request.stamp.nanosec = divmod(played[first].stamp_ns, 1_000_000_000)
        future = set_target.call_async(request)
        rclpy.spin_until_future_complete(node, future, timeout_sec=10)
        reply = future.result()

    period = 1.0 / args.fps
    next_time = time.monotonic()
    for k in range(first + 1, len(video)):
        images.publish(message(k))
        next_time += period
        spin_for(max(0.0, next_time - time.monotonic()))
    # The newest frame is always processed (keep-latest drops only older ones): wait for its tracks,
    # then for a /diagnostics status that has counted it.
    last = played[len(video) - 1]
    end = time.monotonic() + 10.0
    while last.box is None and time.monotonic() < end and node_proc.poll() is None:
        spin_for(0.05)
    status.clear()
    while "tracker_fps" not in status and time.monotonic() < end + 5.0 and node_proc.poll() is None:
        spin_for(0.05)
    node.destroy_node()
    rclpy.shutdown()
    return [played.get(k, Played(0)) for k in range(len(video))], reply.message, status


def annotate(video: SyntheticVideo, played: list[Played], first: int,
             random_weights: bool) -> list[np.ndarray]:
    """RGB frames with the ground truth (white) and the node's box (green tracking, orange lost)."""
    frames = []
    for k in range(first, len(video)):
        image = video.frame(k)
        if np.isfinite(video.gt[k]).all():
            draw_box(image, video.gt[k], GT_COLOR, thickness=1)
        entry = played[k]
        if entry.box is not None:
            state = TrackState(entry.state)
            draw_box(image, entry.box, COLORS[state], f"{state.name.lower()} {entry.confidence:.2f}")
        note = "target set" if k == first else "" if entry.box is not None else "dropped"
        caption = f"frame {k}  {note}" + ("  RANDOM WEIGHTS" if random_weights else "")
        cv2.putText(image, caption, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 0), 1, cv2.LINE_AA)
        frames.append(image)
    return frames


def legend(width: int) -> np.ndarray:
    """A strip saying what the montage's boxes are: ground truth and the node's box by track state."""
    strip = np.full((28, width, 3), 32, np.uint8)
    x = 8
    for color, text in ((GT_COLOR, "ground truth"), (COLORS[TrackState.TRACKING], "node: tracking"),
                        (COLORS[TrackState.LOST], "node: lost (searching)")):
        cv2.rectangle(strip, (x, 8), (x + 14, 20), color, 2)
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(strip, text, (x + 20, 19), font, 0.45, (230, 230, 230), 1, cv2.LINE_AA)
        x += 30 + cv2.getTextSize(text, font, 0.45, 1)[0][0]
    return strip


def write_outputs(out: Path, frames: list[np.ndarray], fps: float, played: list[Played],
                  video: SyntheticVideo) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    video_path = out / "demo.mp4"
    writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    picks = np.linspace(0, len(frames) - 1, 8).round().astype(int)
    tiles = [cv2.resize(frames[i], (width // 2, height // 2), interpolation=cv2.INTER_AREA) for i in picks]
    strips = [np.hstack(tiles[r * 4:(r + 1) * 4]) for r in range(2)]
    montage = np.vstack([*strips, legend(strips[0].shape[1])])
    montage_path = out / "montage.png"
    cv2.imwrite(str(montage_path), cv2.cvtColor(montage, cv2.COLOR_RGB2BGR))
    tracks_path = out / "tracks.csv"
    with tracks_path.open("w", newline="") as handle:
        rows = csv.writer(handle)
        rows.writerow(["frame", "stamp_ns", "x", "y", "w", "h", "state", "confidence", "latency_s",
                       "gt_x", "gt_y", "gt_w", "gt_h"])
        for k, entry in enumerate(played):
            box = entry.box or ("", "", "", "")
            rows.writerow([k, entry.stamp_ns, *box, entry.state, entry.confidence,
                           "" if entry.latency is None else f"{entry.latency:.4f}", *video.gt[k]])
    written = [montage_path, tracks_path]
    return [video_path, *written] if video_path.is_file() and video_path.stat().st_size > 0 else written


def summarise(played: list[Played], video: SyntheticVideo, first: int, fps: float,
              tracker_fps: str = "n/a") -> str:
    after = played[first + 1:]
    answered = [(k, p) for k, p in enumerate(after, start=first + 1) if p.box is not None]
    ious = [box_iou(np.asarray(p.box), video.gt[k]) for k, p in answered if np.isfinite(video.gt[k]).all()]
    latencies = np.array([p.latency for _, p in answered])
    if not answered:
        return f"no tracks came back for {len(after)} frames played at {fps:g} fps"
    span = (answered[-1][1].stamp_ns - answered[0][1].stamp_ns) / 1e9
    processed_fps = (len(answered) - 1) / span if span > 0 else float("nan")
    return (f"{len(after)} frames played at {fps:g} fps; {len(answered)} processed "
            f"({len(after) - len(answered)} dropped by keep-latest), {processed_fps:.1f} fps processed "
            f"(at most the playback rate); the tracker itself runs at {tracker_fps} fps "
            "(1 / mean step time, from /diagnostics); "
            f"latency stamp->tracks p50 {np.percentile(latencies, 50) * 1e3:.0f} ms, "
            f"p99 {np.percentile(latencies, 99) * 1e3:.0f} ms; "
            f"mean IoU {np.mean(ious):.3f}, success (IoU > 0.5) {np.mean(np.array(ious) > 0.5):.1%} "
            f"over {len(ious)} processed frames with ground truth")


def main(argv: list[str] | None = None) -> int:
    from grm_ros.datasets.synthetic import SyntheticVideo

    args = parse_args(argv)
    isolate_ros_environment()
    args.out.mkdir(parents=True, exist_ok=True)
    random_weights = weights_file(args.variant, args.checkpoint or None) is None
    if random_weights:
        print(f"NOTE: no --checkpoint, and no packaged model for {args.variant}: "
              f"the node runs {args.variant} with RANDOM weights (allow_random). Its boxes and the IoU "
              "below are meaningless; this run only shows the plumbing.", flush=True)
    video = SyntheticVideo(args.index, seed=args.seed, split="heldout",
                           params=SynthParams(length=args.frames))
    material = "procedural stand-ins" if video.material.procedural else "Debian-packaged photos"
    print(f"demo video {video.name}: {len(video)} frames {video.params.width}x{video.params.height}, "
          f"held-out synthetic ({material})", flush=True)
    node_proc = start_node(args, random_weights, args.out / "node.log")
    try:
        played, reply, status = play(args, video, node_proc)
    finally:
        node_proc.send_signal(signal.SIGINT)
        try:
            node_proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            node_proc.kill()
    first = int(np.flatnonzero(video.visible)[0])
    print(f"set_target: {reply}")
    frames = annotate(video, played, first, random_weights)
    for path in write_outputs(args.out, frames, args.fps, played, video):
        print(f"wrote {path}")
    print(summarise(played, video, first, args.fps, status.get("tracker_fps", "n/a"))
          + (" [RANDOM WEIGHTS]" if random_weights else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
