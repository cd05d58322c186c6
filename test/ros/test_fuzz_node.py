"""Property-based fuzzing of a live node over DDS (issue 18), one bad input per example.

An example is one of: an image message (any encoding, 0 to 8k px a side, any step, truncated data), a
detection array (0 to 1000 detections, any values), a set_target request (any floats, stamps and ids), or
a run of frames with arbitrary stamps. After each one the node must answer a good set_target and track a
good frame; every image must be tracked or refused with a count; and nothing the node ever published may
hold a non-finite number or a TRACKING box outside its frame.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Time
from fuzzing import any_float, boxes, budget, mixed_float
from hypothesis import event, given
from hypothesis import strategies as st
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import BoundingBox2D, Detection2D, ObjectHypothesisWithPose

from grm_ros.msg import Track
from grm_ros.ros.image_conversion import SUPPORTED_ENCODINGS
from grm_ros.ros.messages import stamp_to_ns
from grm_ros.srv import SetTarget

from node_harness import FRAME_ID, image_msg, inside, make_harness, non_finite_fields, scene, stamp

GOOD = 2_000_000  # stamp seconds of the check's good frames
FUZZ_IMAGES = 3_000_000  # fuzzed image k is stamped FUZZ_IMAGES + k, so its tracks can be told apart
RESERVED = range(GOOD, FUZZ_IMAGES + 1_000_000)  # fuzzed stamps stay out of both
BYTES_PER_PIXEL = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8UC1": 1, "mono16": 2,
                   "16UC1": 2}
MAX_DATA = 4 << 20  # bytes: larger images always come truncated, to keep each example short
WAIT = 5.0  # s: how long the node may take to handle one fuzzed input (short, so that shrinking is fast)

stamps = st.builds(Time, sec=st.integers(-2**31, 2**31 - 1).filter(lambda s: s not in RESERVED),
                   nanosec=st.integers(0, 2**32 - 1))


SIDES = st.one_of(st.tuples(st.integers(0, 16), st.integers(0, 16)),  # around the minimum frame
                  st.tuples(st.integers(10, 480), st.integers(10, 640)),  # ordinary
                  st.tuples(st.integers(0, 8192), st.integers(0, 128)),  # tall
                  st.tuples(st.integers(0, 128), st.integers(0, 8192)),  # wide
                  st.tuples(st.integers(0, 8192), st.integers(0, 8192)))  # anything, then truncated


@st.composite
def images(draw, well_formed: bool = False) -> Image:
    """Any encoding, size, step and data length; ``well_formed``: a supported encoding, a step of at least
    one row and all the data (the frame may still be too small to track)."""
    junk = st.one_of(st.sampled_from(["yuv422", "bayer_rggb8", "32FC1", ""]), st.text(max_size=12))
    encoding = draw(st.sampled_from(SUPPORTED_ENCODINGS) if well_formed
                    else st.one_of(st.sampled_from(SUPPORTED_ENCODINGS), junk))
    height, width = draw(SIDES)
    row = width * BYTES_PER_PIXEL.get(encoding, 3)
    step = draw(st.integers(row, row + 8) if well_formed
                else st.one_of(st.integers(max(row - 2, 0), row + 8), st.integers(0, 2**32 - 1)))
    need = step * (height - 1) + row if height else 0
    if well_formed and need <= MAX_DATA:
        size = need
    else:
        size = draw(st.integers(0, need) if need <= MAX_DATA else st.integers(0, 4096))
    data = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, 256, size, np.uint8)
    return Image(height=height, width=width, encoding=encoding, is_bigendian=draw(st.integers(0, 1)),
                 step=step, data=data.tobytes())


def _detection(cx: float, cy: float, sx: float, sy: float, scores: list[tuple[str, float]]) -> Detection2D:
    d = Detection2D(bbox=BoundingBox2D(size_x=sx, size_y=sy))
    d.bbox.center.position.x, d.bbox.center.position.y = cx, cy
    for label, score in scores:
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id, hypothesis.hypothesis.score = label, score
        d.results.append(hypothesis)
    return d


POOL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, 1e-300, 3.5e38, 1.5e154, 1.7e308, -1.7e308])


def _many_detections(count: int, seed: int) -> list[Detection2D]:
    """``count`` detections whose values are drawn by numpy (fast) from ordinary ranges and ``POOL``."""
    rng = np.random.default_rng(seed)
    values = np.where(rng.random((count, 5)) < 0.2, rng.choice(POOL, (count, 5)),
                      rng.uniform(-50, 250, (count, 5)))
    return [_detection(*map(float, v[:4]), [("car", float(v[4]))]) for v in values]


detections = st.one_of(
    st.lists(st.builds(_detection, mixed_float, mixed_float, mixed_float, mixed_float,
                       st.lists(st.tuples(st.text(max_size=6), any_float), max_size=3)), max_size=20),
    st.builds(_many_detections, st.integers(0, 1000), st.integers(0, 2**32 - 1)),
    st.builds(lambda cx, cy, sx, sy: [_detection(cx, cy, sx, sy, [("car", 0.9)])],  # near the frame
              st.floats(-20, 180), st.floats(-20, 140), st.floats(0, 300), st.floats(0, 300)))

cases = st.one_of(
    st.tuples(st.just("image"), st.one_of(images(well_formed=True), images())),
    st.tuples(st.just("detections"), detections, st.one_of(st.just("latest"), st.just("good"), stamps)),
    st.tuples(st.just("set_target"), boxes(),
              st.one_of(st.just("latest"), st.just("good"), stamps),
              st.one_of(st.just(0), st.integers(1, 4), st.integers(0, 2**32 - 1)), st.text(max_size=20)),
    st.tuples(st.just("stamps"), st.lists(stamps, min_size=1, max_size=5)),
)


class FuzzedNode:
    """A node under fuzz and what the checks need to remember across examples."""

    def __init__(self, h) -> None:
        self.h, self.stats = h, h.node._stats
        self.sizes: dict[int, tuple[int, int]] = {}  # stamp -> (width, height) of fuzzed images; else 160x120
        self.fuzzed, self.good = itertools.count(), itertools.count()
        self.checked = 0  # published TrackArrays already checked
        self.last_good = stamp(0)

    def resolve(self, when: str | Time) -> Time:
        """A fuzzed stamp as it is; "latest" as 0 (the node's latest frame); "good" as the last good frame."""
        return when if isinstance(when, Time) else {"latest": stamp(0), "good": self.last_good}[when]

    def run(self, case: tuple) -> None:
        """Send one fuzzed input and wait until the node has handled it."""
        h, stats, kind = self.h, self.stats, case[0]
        if kind == "image":  # tracked, or refused with a count
            msg, when = case[1], stamp(FUZZ_IMAGES + next(self.fuzzed))
            msg.header = Header(stamp=when, frame_id=FRAME_ID)
            self.sizes[stamp_to_ns(when)] = (msg.width, msg.height)
            refused = stats.bad_images + stats.tracker_errors
            h.image_pub.publish(msg)
            assert h.spin_until(lambda: bool(h.tracks_at(when)) or stats.bad_images + stats.tracker_errors
                                > refused, WAIT), f"image {msg.encoding!r} {msg.width}x{msg.height} lost"
            event("image tracked" if h.tracks_at(when) else "image refused")
        elif kind == "detections":
            count = stats.detection_messages
            h.publish_detections(self.resolve(case[2]), case[1])
            assert h.spin_until(lambda: stats.detection_messages > count, WAIT)
        elif kind == "set_target":
            (x, y, w, h_), when, target_id, label = case[1:]
            request = SetTarget.Request(center_x=x + w / 2, center_y=y + h_ / 2, size_x=w, size_y=h_,
                                        stamp=self.resolve(when), target_id=target_id, label=label)
            event("set_target accepted" if h.call(h.set_client, request).success else "set_target refused")
        else:  # invalid stamps (nanosec >= 1e9) are refused; of the valid ones the last is tracked
            valid = [when for when in case[1] if when.nanosec < 10**9]
            refused = stats.bad_images + len(case[1]) - len(valid)
            for when in case[1]:
                h.image_pub.publish(image_msg(scene(), when))
            assert h.spin_until(lambda: stats.bad_images == refused
                                and (not valid or bool(h.tracks_at(valid[-1]))), WAIT)

    def check_still_tracking(self) -> None:
        """The node answers a good set_target and tracks a good frame."""
        h = self.h
        assert h.stop_target(0).success
        k = next(self.good)
        self.last_good = stamp(GOOD + 2 * k)
        h.send(scene(), self.last_good)
        reply = h.set_target((60, 40, 24, 24), when=self.last_good)
        assert reply.success, reply.message
        out = h.send(scene(x=62), stamp(GOOD + 2 * k + 1))
        assert [t.state for t in out.tracks if t.id == reply.target_id] == [Track.STATE_TRACKING]

    def check_published(self) -> None:
        """Every TrackArray published since the last check: all fields finite, TRACKING boxes inside."""
        for msg in self.h.tracks[self.checked:]:
            assert not non_finite_fields(msg), (msg, non_finite_fields(msg))
            width, height = self.sizes.get(stamp_to_ns(msg.header.stamp), (160, 120))
            for t in msg.tracks:
                assert t.state != Track.STATE_TRACKING or inside(t, width, height), (t, msg.header)
        self.checked = len(self.h.tracks)


@pytest.fixture(scope="module")
def fuzzed_node() -> Iterator[FuzzedNode]:
    """One node for all examples (module scope: Hypothesis reuses it, and a node per example would cost
    seconds of start-up each)."""
    context = Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    h = make_harness(context, executor, reliable_image=True, detections__policy="all",
                     detections__min_score=0.0)
    try:
        yield FuzzedNode(h)
    finally:
        h.close()
        executor.shutdown()
        rclpy.shutdown(context=context)


@budget(300)
@given(case=cases)
def test_bad_input_never_stops_the_node_nor_publishes_a_false_box(fuzzed_node, case):
    event(case[0])
    fuzzed_node.run(case)
    fuzzed_node.check_still_tracking()
    fuzzed_node.check_published()
