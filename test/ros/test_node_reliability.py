"""Issue 18 through the node: input from the graph never crashes it nor puts a false box on TRACKING.

Each defect the issue found has a test named for the input that showed it; every test also checks that
no published field is non-finite and that the node still tracks afterwards.
"""

from __future__ import annotations

import time

import pytest
import torch
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from grm_ros.msg import Track

from node_harness import detection, image_msg, inside, make_harness, non_finite_fields, scene, stamp

HUGE_SIDES = pytest.mark.parametrize("side", [1.5e154, 3.5e38],
                                     ids=["sides_1e154_area_overflows", "sides_3e38_beyond_float32"])


def _all_published_finite(h) -> None:
    bad = [field for msg in h.tracks for field in non_finite_fields(msg)]
    assert not bad, bad


@HUGE_SIDES
def test_set_target_box_with_huge_sides_is_refused_and_tracking_goes_on(ros_context, executor, side):
    """Defects 1 and 2 on ~/set_target: an OverflowError that ended the process, or a NaN target that
    made every later frame fail for every target."""
    h = make_harness(ros_context, executor)
    h.send(scene(), stamp(1))
    good = h.set_target((60, 40, 24, 24))
    refused = h.set_target((10, 10, side, side))
    assert good.success and not refused.success and refused.target_id == 0
    assert "larger than 10 frame diagonals" in refused.message, refused.message
    for k in (2, 3):
        assert [t.id for t in h.send(scene(), stamp(k)).tracks] == [good.target_id]
    _all_published_finite(h)
    h.close()


@HUGE_SIDES
def test_detection_box_with_huge_sides_is_ignored_and_tracking_goes_on(ros_context, executor, side):
    """Defect 1 on the detections topic: one Detection2DArray from any node ended the process."""
    h = make_harness(ros_context, executor, detections__policy="all")
    h.send(scene(), stamp(1))
    assert h.spin_until(lambda: h.detections_pub.get_subscription_count() > 0)
    h.publish_detections(stamp(1), [detection((10, 10, side, side), "car", 0.9),
                                    detection((100, 60, 30, 30), "dog", 0.8)])
    assert h.spin_until(lambda: h.logged("started from a dog detection"))
    assert [t.label for t in h.send(scene(), stamp(2)).tracks] == ["dog"]
    assert not h.logged("car detection")
    _all_published_finite(h)
    h.close()


def test_images_1x1_and_5x5_below_the_clip_margin_are_refused_and_counted(ros_context, executor):
    """Defect 3: a 1x1 frame gave ``TRACKING c=(-4,-4) s=(10,10)``, a box outside the image."""
    h = make_harness(ros_context, executor, diagnostics_period=0.2)
    h.send(scene(), stamp(1))
    assert h.set_target((60, 40, 24, 24)).success
    for k, side in enumerate((1, 5)):
        h.image_pub.publish(image_msg(scene(side, side), stamp(2, k)))
    out = h.send(scene(), stamp(3))
    assert [t.age for t in out.tracks] == [1]  # neither tiny frame was tracked
    assert not h.tracks_at(stamp(2, 0)) and not h.tracks_at(stamp(2, 1))
    assert all(inside(t, 160, 120) for msg in h.tracks for t in msg.tracks if t.state == Track.STATE_TRACKING)
    assert h.spin_until(lambda: h.status() is not None and h.status()[2]["bad_images"] == "2")
    assert "smaller than the tracker's minimum of 10x10" in h.status()[2]["last_bad_image"]
    assert len(h.logged("smaller than the tracker's minimum")) == 1  # once per topic, counted every time
    refused = h.set_target((0, 0, 1, 1), when=stamp(2, 0))
    assert not refused.success and "unknown stamp" in refused.message  # never buffered
    h.close()


def test_frames_overwritten_in_a_reliable_depth_5_queue_are_counted_as_missed(ros_context, executor):
    """Defect 5: frames that piled up before the executor read them never reached any counter."""
    h = make_harness(ros_context, executor, reliable_image=True, diagnostics_period=0.2)
    publisher = h.client.create_publisher(Image, f"{h.node.get_namespace()}/image",
                                          QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    published = 0

    def publish(msg: Image) -> None:
        nonlocal published
        publisher.publish(msg)
        published += 1

    first = image_msg(scene(), stamp(1))
    assert h.spin_until(lambda: publish(first) or bool(h.tracks_at(stamp(1))))
    for k in range(20):  # nobody spins the node's executor meanwhile: its 5-deep queue overflows
        publish(image_msg(scene(), stamp(2, k)))
    time.sleep(0.5)

    def settled() -> bool:
        values = h.status()[2] if h.status() else {}
        return int(values.get("frames_received", 0)) + int(values.get("frames_missed", 0)) == published

    assert h.spin_until(settled), (published, h.status())
    values = h.status()[2]
    # the queue held the last 5 of the 20 (and of any copies of the first frame still waiting in it)
    assert int(values["frames_missed"]) >= 15, values
    assert h.send(scene(), stamp(3)).header.stamp == stamp(3)
    h.close()


def test_a_target_whose_state_turns_non_finite_is_stopped_with_a_reason_and_counted(ros_context, executor):
    h = make_harness(ros_context, executor, diagnostics_period=0.2)
    h.send(scene(), stamp(1))
    a, b = h.set_target((10, 10, 20, 20), label="a"), h.set_target((100, 60, 30, 30), label="b")
    with h.node._tracker_lock:  # a NaN template: what an overflowing half-precision forward leaves behind
        target = h.node._tracker.targets[b.target_id]
        target.template = torch.full_like(target.template, float("nan"))
    out = h.send(scene(), stamp(2))
    states = {t.id: t.state for t in out.tracks}
    assert states[b.target_id] == Track.STATE_STOPPED and states[a.target_id] != Track.STATE_STOPPED
    assert h.spin_until(lambda: h.logged(f"target {b.target_id} (b) stopped: state turned non-finite"))
    assert [t.id for t in h.send(scene(), stamp(3)).tracks] == [a.target_id]
    assert h.spin_until(lambda: h.status() is not None and h.status()[2]["targets_failed"] == "1")
    _all_published_finite(h)
    h.close()



def test_images_stamped_with_nanosec_of_1e9_or_more_are_refused_and_counted(ros_context, executor):
    """Found by the fuzz suite: the node echoed such a stamp normalised, a stamp nobody published; at the
    end of int32 seconds the normalised stamp did not fit the message and the worker died on it."""
    h = make_harness(ros_context, executor, diagnostics_period=0.2)
    h.send(scene(), stamp(1))
    assert h.set_target((60, 40, 24, 24)).success
    h.image_pub.publish(image_msg(scene(), stamp(2**31 - 1, 1_999_999_999)))
    h.image_pub.publish(image_msg(scene(), stamp(2, 10**9)))
    assert [t.age for t in h.send(scene(), stamp(3)).tracks] == [1]
    assert h.spin_until(lambda: h.status() is not None and h.status()[2]["bad_images"] == "2")
    assert "nanosec must be below 1e9" in h.status()[2]["last_bad_image"]
    _all_published_finite(h)
    h.close()
