"""The tracker node end to end over DDS: frames in, tracks out; targets set by service and by detections."""

from __future__ import annotations

import cv2
import pytest
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from grm_ros.msg import Track
from grm_ros.ros.parameters import PARAMETERS

from node_harness import FRAME_ID, detection, make_harness, scene, stamp


def test_frames_in_tracks_out_with_the_source_header(ros_context, executor):
    h = make_harness(ros_context, executor)
    assert h.node.lifecycle_state == "active", h.node.error
    first = h.send(scene(), stamp(10, 5))
    assert first.tracks == [] and first.header.frame_id == FRAME_ID

    reply = h.set_target((60, 40, 24, 24), label="square")
    assert reply.success and reply.target_id == 1, reply.message
    assert "stamped 10.000" in reply.message

    outputs: dict[str, list] = {"detections": [], "overlay": []}
    ns, name = h.node.get_namespace(), h.node.get_name()
    prefix = f"{ns}/{name}"
    h.client.create_subscription(Detection2DArray, f"{prefix}/detections", outputs["detections"].append, 10)
    h.client.create_subscription(Image, f"{prefix}/overlay", outputs["overlay"].append, 10)
    assert h.spin_until(lambda: h.node.count_subscribers(f"{prefix}/overlay") > 0)

    for k in range(1, 4):
        when = stamp(10 + k, 123)
        out = h.send(scene(x=60 + 2 * k), when)
        assert out.header.stamp == when and out.header.frame_id == FRAME_ID
        assert len(out.tracks) == 1
        track = out.tracks[0]
        assert (track.id, track.label, track.age) == (1, "square", k)
        assert track.header == out.header
        assert track.state in (Track.STATE_TRACKING, Track.STATE_LOST)
        assert track.size_x > 0 and track.size_y > 0
    last = stamp(13, 123)
    assert h.spin_until(lambda: any(d.header.stamp == last for d in outputs["detections"]) and
                        any(o.header.stamp == last for o in outputs["overlay"]))
    det = next(d for d in outputs["detections"] if d.header.stamp == last)
    assert det.header.frame_id == FRAME_ID and det.detections[0].id == "1"
    assert det.detections[0].results[0].hypothesis.class_id == "square"
    overlay = next(o for o in outputs["overlay"] if o.header.stamp == last)
    assert (overlay.width, overlay.height, overlay.encoding) == (160, 120, "rgb8")
    h.close()


def test_compressed_input_on_the_remapped_topic(ros_context, executor):
    h = make_harness(ros_context, executor, remap={"image": "camera/raw"}, input__compressed=True)
    ns = h.node.get_namespace()
    publisher = h.client.create_publisher(CompressedImage, f"{ns}/camera/raw/compressed", 10)
    png = cv2.imencode(".png", cv2.cvtColor(scene(), cv2.COLOR_RGB2BGR))[1]
    when = stamp(7, 7)
    message = CompressedImage(header=Header(stamp=when, frame_id=FRAME_ID), format="png", data=png.tobytes())

    def arrived() -> bool:
        publisher.publish(message)
        return bool(h.tracks_at(when))

    assert h.spin_until(arrived)
    reply = h.set_target((60, 40, 24, 24), when=when)
    assert reply.success and "160x120 frame stamped 7.000" in reply.message
    h.close()


def test_set_target_on_an_older_stamp_uses_that_frame(ros_context, executor):
    """The old frame is 320x240, the newer ones 160x120: a box that only the old frame contains shows which
    frame the node used."""
    h = make_harness(ros_context, executor)
    old = stamp(20)
    h.send(scene(320, 240, x=250, y=200), old)
    for k in range(1, 4):
        h.send(scene(160, 120), stamp(20 + k))
    box = (250, 200, 24, 24)
    latest = h.set_target(box)
    assert not latest.success and "outside the 160x120 frame" in latest.message
    reply = h.set_target(box, when=old, label="old")
    assert reply.success, reply.message
    assert "320x240 frame stamped 20.000" in reply.message
    out = h.send(scene(160, 120), stamp(30))
    assert [t.id for t in out.tracks] == [reply.target_id]
    h.close()


def test_two_targets_at_once(ros_context, executor):
    h = make_harness(ros_context, executor)
    h.send(scene(), stamp(1))
    a = h.set_target((10, 10, 20, 20), label="a")
    b = h.set_target((100, 60, 30, 30), label="b")
    assert a.success and b.success and a.target_id != b.target_id
    out = h.send(scene(), stamp(2))
    assert sorted((t.id, t.label) for t in out.tracks) == sorted([(a.target_id, "a"), (b.target_id, "b")])
    assert all(t.header.stamp == stamp(2) for t in out.tracks)

    restarted = h.set_target((40, 40, 20, 20), target_id=a.target_id)
    assert restarted.success and restarted.target_id == a.target_id and "restarted" in restarted.message
    stopped = h.stop_target(b.target_id)
    assert stopped.success and stopped.stopped == 1
    out = h.send(scene(), stamp(3))
    assert [(t.id, t.label, t.age) for t in out.tracks] == [(a.target_id, "a", 1)]
    assert h.stop_target(0).stopped == 1
    assert h.send(scene(), stamp(4)).tracks == []
    h.close()


DETECTIONS = [
    detection((5, 5, 30, 20), "car", 0.95),         # best score
    detection((68, 48, 24, 24), "dog", 0.6),        # nearest the centre (80, 60)
    detection((120, 80, 30, 30), "person", 0.8),    # under the hint box
    detection((40, 70, 20, 20), "cat", 0.3),        # below min_score: never chosen
]


@pytest.mark.parametrize("policy, hint, expected", [
    ("highest_score", [0.0, 0.0, 0.0, 0.0], ["car"]),
    ("nearest_center", [0.0, 0.0, 0.0, 0.0], ["dog"]),
    ("best_iou", [118.0, 82.0, 30.0, 30.0], ["person"]),
    ("all", [0.0, 0.0, 0.0, 0.0], ["car", "dog", "person"]),
])
def test_detections_start_targets_under_each_policy(ros_context, executor, policy, hint, expected):
    h = make_harness(ros_context, executor, detections__policy=policy, detections__hint_box=hint)
    when = stamp(5)
    h.send(scene(), when)
    assert h.spin_until(lambda: h.detections_pub.get_subscription_count() > 0)
    h.publish_detections(when, DETECTIONS)
    assert h.spin_until(lambda: len(h.logged("started from a")) == len(expected))
    out = h.send(scene(), stamp(6))
    assert sorted(t.label for t in out.tracks) == expected
    assert len({t.id for t in out.tracks}) == len(expected)
    h.close()


def test_lost_target_is_reacquired_from_a_detection_with_its_id(ros_context, executor):
    # Scripted loss: any confidence below 1 is weak, two weak frames make a target LOST.
    h = make_harness(ros_context, executor, tracker__lost_threshold=1.0, tracker__recover_threshold=1.0,
                     tracker__lost_after=2, detections__initialize=False)
    h.send(scene(), stamp(1))
    target = h.set_target((60, 40, 24, 24), label="person").target_id
    assert h.send(scene(), stamp(2)).tracks[0].state == Track.STATE_TRACKING
    lost = h.send(scene(), stamp(3)).tracks[0]
    assert (lost.id, lost.state) == (target, Track.STATE_LOST)

    assert h.spin_until(lambda: h.detections_pub.get_subscription_count() > 0)
    box = (lost.center_x - lost.size_x / 2, lost.center_y - lost.size_y / 2, lost.size_x, lost.size_y)
    h.publish_detections(stamp(3), [detection(box, "car", 0.9)])  # wrong class: ignored
    h.publish_detections(stamp(3), [detection(box, "person", 0.9)])
    assert h.spin_until(lambda: len(h.logged(f"target {target} re-acquired")) == 1)
    back = h.send(scene(), stamp(4)).tracks
    assert [(t.id, t.state, t.label, t.age) for t in back] == [(target, Track.STATE_TRACKING, "person", 1)]
    h.close()


def test_every_parameter_is_declared_with_a_descriptor(ros_context, executor):
    h = make_harness(ros_context, executor, autostart=False)
    assert h.node.lifecycle_state == "unconfigured"
    for spec in PARAMETERS:
        described = h.node.describe_parameter(spec.name)
        assert described.description and described.type == spec.type
        if spec.low is not None:
            assert (described.integer_range or described.floating_point_range)
    h.close()


def test_division_debug_image_on_demand(ros_context, executor):
    """debug.division: ~/division carries the first target's division montage with the frame's header,
    only while someone subscribes; without a subscriber the tracker runs as usual."""
    h = make_harness(ros_context, executor, debug__division=True, engine__backend="auto")
    assert h.node.lifecycle_state == "active", h.node.error
    assert h.node._engine.backend == "torch"  # auto resolves to the backend the hooks need
    h.send(scene(), stamp(20))
    assert h.set_target((60, 40, 24, 24)).success
    assert len(h.send(scene(x=62), stamp(21)).tracks) == 1  # nobody listens: no montage, still tracked

    prefix = f"{h.node.get_namespace()}/{h.node.get_name()}"
    received: list[Image] = []
    h.client.create_subscription(Image, f"{prefix}/division", received.append, 10)
    assert h.spin_until(lambda: h.node.count_subscribers(f"{prefix}/division") > 0)
    when = stamp(22, 7)
    out = h.send(scene(x=64), when)
    assert len(out.tracks) == 1
    assert h.spin_until(lambda: any(m.header.stamp == when for m in received))
    image = next(m for m in received if m.header.stamp == when)
    assert image.header.frame_id == FRAME_ID and image.encoding == "rgb8"
    dividing = sum(block.attn.divide for block in h.node._engine.model.backbone.blocks)
    # Two rows (decisions, p(interact)) of 320-px panels: the frame, then one panel per dividing block.
    assert image.height == 2 * 320 + 4 and image.width > dividing * 320
    h.close()


def test_division_debug_refuses_a_backend_without_hooks(ros_context, executor):
    h = make_harness(ros_context, executor, debug__division=True, engine__backend="onnxruntime")
    assert h.node.lifecycle_state == "unconfigured"
    assert "debug.division" in h.node.error and "torch or auto" in h.node.error
    h.close()
