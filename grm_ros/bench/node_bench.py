"""Node end-to-end latency: image stamp -> TrackArray received, through real rclpy on loopback.

One process holds the tracker node and a client node on an isolated DDS domain. The client publishes a
frame stamped "now", waits for the tracks of that stamp, then sends the next one (closed loop, so the
figure is the latency of one frame, not of a queue). Needs rclpy; ``node_available`` says whether it is.
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np

from grm_ros.bench.stats import summarize
from grm_ros.bench.tracker_bench import RESOLUTIONS, moving_frames, start_boxes


def node_available() -> bool:
    return importlib.util.find_spec("rclpy") is not None


def bench_node(variant: str = "small_cpu", device: str = "cpu", dtype: str = "fp32",
               resolution: str = "1920x1080", targets: int = 1, frames: int = 20, warmup: int = 3,
               geometry: str = "device", timeout: float = 60.0) -> dict:
    from grm_ros.ros.isolation import isolate_ros_environment

    domain = isolate_ros_environment()  # before rclpy creates a context
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from grm_ros.msg import TrackArray
    from grm_ros.ros.image_conversion import rgb_to_raw
    from grm_ros.ros.messages import stamp_to_ns
    from grm_ros.ros.node import TrackerNode
    from grm_ros.ros.spin import spin_until
    from grm_ros.srv import SetTarget

    width, height = RESOLUTIONS[resolution]
    video = moving_frames(width, height, frames + warmup + 1)
    context = Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    params = [Parameter("allow_random", value=True), Parameter("variant", value=variant),
              Parameter("device", value=device), Parameter("dtype", value=dtype),
              Parameter("tracker.geometry", value=geometry), Parameter("autostart_wait", value=0.0)]
    node = TrackerNode(context=context, namespace="/grm_bench", parameter_overrides=params)
    client = rclpy.create_node("grm_bench_client", namespace="/grm_bench", context=context)
    received: dict[int, int] = {}
    try:
        for n in (node, client):
            executor.add_node(n)
        topic = f"/grm_bench/{node.get_name()}/tracks"

        def on_tracks(msg: TrackArray) -> None:
            received.setdefault(stamp_to_ns(msg.header.stamp), client.get_clock().now().nanoseconds)

        client.create_subscription(TrackArray, topic, on_tracks, 10)
        publisher = client.create_publisher(Image, "/grm_bench/image", 10)

        def send(rgb: np.ndarray) -> int:
            """Publish until the node answers (discovery may still be matching); the answered stamp."""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                now = client.get_clock().now()
                h, w, step, data = rgb_to_raw(rgb)
                publisher.publish(Image(header=Header(stamp=now.to_msg(), frame_id="bench"), height=h,
                                        width=w, encoding="rgb8", is_bigendian=0, step=step, data=data))
                if spin_until(executor, lambda ns=now.nanoseconds: ns in received, 5.0, step=0.01):
                    return now.nanoseconds
            raise TimeoutError(f"the node published no tracks within {timeout} s")

        first = send(video[0])
        setter = client.create_client(SetTarget, f"/grm_bench/{node.get_name()}/set_target")
        if not spin_until(executor, setter.service_is_ready, timeout, step=0.01):
            raise TimeoutError("set_target service not available")
        for k, (x, y, w, h) in enumerate(start_boxes(width, height, targets)):
            request = SetTarget.Request(center_x=x + w / 2, center_y=y + h / 2, size_x=w, size_y=h,
                                        target_id=k + 1)
            request.stamp.sec, request.stamp.nanosec = divmod(first, 10**9)
            future = setter.call_async(request)
            if not spin_until(executor, future.done, timeout, step=0.01) or not future.result().success:
                raise RuntimeError(f"set_target failed: {future.result()}")
        latencies = []
        for k, rgb in enumerate(video[1:]):
            sent = send(rgb)
            if k >= warmup:
                latencies.append((received[sent] - sent) / 1e9)
    finally:
        for n in (node, client):
            executor.remove_node(n)
            n.destroy_node()
        executor.shutdown()
        rclpy.shutdown(context=context)
    return {"variant": variant, "device": device, "dtype": dtype, "resolution": resolution,
            "targets": targets, "geometry": geometry, "ros_domain": domain, "latency": summarize(latencies)}
