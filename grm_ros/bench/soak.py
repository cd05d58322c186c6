"""``make soak``: the node as its own process for minutes on end, to show that it neither leaks nor slows.

A client publishes frames stamped "now" in a closed loop (the next frame once the tracks of the last one
arrived, so latency is per frame, not a queue), with a few bad inputs mixed in (a truncated image and a
refused set_target every 1,000 frames, a target restart every 2,000). Every window it samples the node's
resident memory (``/proc/<pid>/status``) and the latency percentiles of that window. The report gives
RSS growth per 10k frames (least-squares slope of RSS over frames, the first window left out as warm-up)
and the latency over time, printed and written as JSON.

    python -m grm_ros.bench.soak --minutes 10 --out out/soak/soak.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from grm_ros.bench.stats import summarize
from grm_ros.bench.tracker_bench import RESOLUTIONS, moving_frames, start_boxes

CONFIG = Path(__file__).resolve().parents[2] / "config" / "tracker.yaml"
NAMESPACE = "/grm_soak"
BAD_INPUT_EVERY = 1000  # frames
RESTART_EVERY = 2000  # frames


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def growth_per_10k(frames: list[int], rss: list[float]) -> float:
    """MiB of RSS per 10,000 frames: the least-squares slope, without the first (warm-up) sample."""
    x, y = np.asarray(frames[1:], float), np.asarray(rss[1:], float)
    if len(x) < 2 or np.ptp(x) == 0:
        raise ValueError("need at least 3 windows to measure RSS growth; run longer or use smaller windows")
    return float(np.polyfit(x, y, 1)[0] * 10_000)


def soak(minutes: float, window: float, resolution: str, targets: int, node_params: list[str],
         log_path: Path) -> dict:
    """Run the soak and return the report (see the module docstring)."""
    from grm_ros.ros.isolation import isolate_ros_environment

    domain = isolate_ros_environment()  # before rclpy creates a context; the node process inherits it
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from grm_ros.msg import TrackArray
    from grm_ros.ros.image_conversion import rgb_to_raw
    from grm_ros.ros.messages import stamp_to_ns
    from grm_ros.ros.node import image_qos_override
    from grm_ros.ros.spin import spin_until
    from grm_ros.srv import SetTarget, StopTarget

    width, height = RESOLUTIONS[resolution]
    video = moving_frames(width, height, 64)
    raws = [rgb_to_raw(rgb) for rgb in video]
    given = [f"{image_qos_override(NAMESPACE)}:=reliable", "autostart_wait:=0.0", *node_params]
    params = [arg for p in given for arg in ("-p", p)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "grm_ros.ros.node", "--ros-args", "--params-file",
                                 str(CONFIG), *params, "-r", f"__ns:={NAMESPACE}"], env=os.environ.copy(),
                                stdout=log, stderr=subprocess.STDOUT)
    context = Context()
    rclpy.init(args=[], context=context)  # this process's own arguments are not ROS arguments
    executor = SingleThreadedExecutor(context=context)
    client = rclpy.create_node("grm_soak_client", namespace=NAMESPACE, context=context)
    executor.add_node(client)
    arrived: dict[int, int] = {}

    def on_tracks(msg: TrackArray) -> None:
        arrived.setdefault(stamp_to_ns(msg.header.stamp), client.get_clock().now().nanoseconds)

    client.create_subscription(TrackArray, f"{NAMESPACE}/grm_tracker/tracks", on_tracks, 10)
    publisher = client.create_publisher(Image, f"{NAMESPACE}/image",
                                        QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    setter = client.create_client(SetTarget, f"{NAMESPACE}/grm_tracker/set_target")
    stopper = client.create_client(StopTarget, f"{NAMESPACE}/grm_tracker/stop_target")

    def publish(k: int, truncated: bool = False) -> int:
        now = client.get_clock().now()
        h, w, step, data = raws[k % len(raws)]
        data = data[: len(data) // 2] if truncated else data
        publisher.publish(Image(header=Header(stamp=now.to_msg(), frame_id="soak"), height=h, width=w,
                                encoding="rgb8", step=step, data=data))
        return now.nanoseconds

    def call(client_, request):
        future = client_.call_async(request)
        if not spin_until(executor, future.done, 30.0, step=0.01):
            raise TimeoutError(f"{type(request).__name__} timed out")
        return future.result()

    def set_targets() -> None:
        for x, y, w, h in start_boxes(width, height, targets):
            request = SetTarget.Request(center_x=x + w / 2, center_y=y + h / 2, size_x=w, size_y=h)
            reply = call(setter, request)
            if not reply.success:
                raise RuntimeError(f"set_target refused: {reply.message}")

    samples: list[dict] = []
    latencies: list[float] = []
    frames = timeouts = 0
    try:
        deadline = time.monotonic() + 120
        while not spin_until(executor, lambda: bool(arrived), 1.0, step=0.01):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the node published no tracks (see {log_path})")
            publish(0)
        set_targets()
        start = next_sample = time.monotonic()
        end = start + minutes * 60
        while True:
            now = time.monotonic()
            if now >= next_sample:
                window_ms = summarize(latencies) if latencies else {}
                samples.append({"elapsed_s": round(now - start, 1), "frames": frames,
                                "rss_mib": round(rss_mb(proc.pid), 1),
                                **{k: round(window_ms[k], 2) for k in ("median_ms", "p90_ms", "p99_ms")
                                   if k in window_ms}})
                latencies.clear()
                next_sample += window
                if now >= end:
                    break
            frames += 1
            sent = publish(frames)
            if spin_until(executor, lambda ns=sent: ns in arrived, 5.0, step=0.001):
                latencies.append((arrived.pop(sent) - sent) / 1e9)
            else:
                timeouts += 1
            if frames % BAD_INPUT_EVERY == 0:
                publish(frames, truncated=True)
                call(setter, SetTarget.Request(center_x=1e300, center_y=1e300, size_x=1e300, size_y=1e300))
            if frames % RESTART_EVERY == 0:
                call(stopper, StopTarget.Request(target_id=0))
                set_targets()
            arrived.clear()
    finally:
        executor.shutdown()
        client.destroy_node()
        rclpy.try_shutdown(context=context)
        proc.send_signal(signal.SIGINT)
        try:
            returncode = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            returncode = proc.wait()
    return {"minutes": minutes, "resolution": resolution, "targets": targets, "ros_domain": domain,
            "frames": frames, "frames_without_tracks": timeouts, "node_exit_code": returncode,
            "rss_growth_mib_per_10k_frames": growth_per_10k([s["frames"] for s in samples],
                                                            [s["rss_mib"] for s in samples]),
            "windows": samples, "node_log": str(log_path)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grm_ros.bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=60.0, help="seconds per RSS / latency sample")
    parser.add_argument("--resolution", choices=sorted(RESOLUTIONS), default="640x480")
    parser.add_argument("--targets", type=int, default=1)
    parser.add_argument("--node-param", action="append", default=[], metavar="NAME:=VALUE",
                        help="extra node parameter, repeatable (e.g. allow_random:=true)")
    parser.add_argument("--out", type=Path, default=Path("out/soak/soak.json"))
    args = parser.parse_args(argv)
    try:
        report = soak(args.minutes, args.window, args.resolution, args.targets, args.node_param,
                      args.out.with_suffix(".node.log"))
    except (RuntimeError, TimeoutError, ValueError) as err:
        print(f"soak: {err}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'elapsed s':>9} {'frames':>7} {'RSS MiB':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7}")
    for s in report["windows"]:
        print(f"{s['elapsed_s']:9.0f} {s['frames']:7d} {s['rss_mib']:8.1f} {s.get('median_ms', 0):7.1f} "
              f"{s.get('p90_ms', 0):7.1f} {s.get('p99_ms', 0):7.1f}")
    print(f"{report['frames']} frames, {report['frames_without_tracks']} without tracks; RSS growth "
          f"{report['rss_growth_mib_per_10k_frames']:+.2f} MiB per 10k frames; node exit code "
          f"{report['node_exit_code']}; report: {args.out}")
    return 0 if report["node_exit_code"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
