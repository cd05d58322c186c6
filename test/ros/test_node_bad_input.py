"""The bad-input corpus: every case is refused or reported, and the node keeps tracking and answering."""

from __future__ import annotations

import math

import torch
import yaml
from rclpy.lifecycle import TransitionCallbackReturn
from std_srvs.srv import Trigger

from grm_ros.model import DEFAULT_CHECKPOINT, DEFAULT_VARIANT, load_variant

from node_harness import image_msg, make_harness, scene, stamp


def test_refused_service_calls_explain_why(ros_context, executor):
    h = make_harness(ros_context, executor, max_targets=2)
    nothing_yet = h.set_target((10, 10, 20, 20))
    assert not nothing_yet.success and nothing_yet.message == "no image received yet"
    h.send(scene(), stamp(3))
    h.send(scene(), stamp(4))
    refusals = {
        "unknown stamp 9.000000000: not among the 2 buffered frames": h.set_target((10, 10, 20, 20),
                                                                                 when=stamp(9)),
        "outside the 160x120 frame": h.set_target((500, 500, 20, 20)),
        "positive width and height": h.set_target((10, 10, 0, 20)),
        "NaN": h.set_target((math.nan, 10, 20, 20)),
    }
    for reason, reply in refusals.items():
        assert not reply.success and reply.target_id == 0
        assert reason in reply.message, reply.message
    assert h.set_target((10, 10, 20, 20)).success and h.set_target((50, 50, 20, 20)).success
    full = h.set_target((90, 50, 20, 20))
    assert not full.success and "max_targets = 2" in full.message
    missing = h.stop_target(77)
    assert not missing.success and missing.stopped == 0 and "no target 77" in missing.message
    assert len(h.send(scene(), stamp(5)).tracks) == 2  # still tracking after all that

    reset_client = h.client.create_client(Trigger, f"{h.node.get_namespace()}/{h.node.get_name()}/reset")
    reset = h.call(reset_client, Trigger.Request())
    assert reset.success and "stopped 2 targets" in reset.message
    old = h.set_target((10, 10, 20, 20), when=stamp(5))
    assert not old.success and "unknown stamp" in old.message  # reset forgot the buffered frames

    assert h.node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert h.node.lifecycle_state == "inactive"
    inactive = h.set_target((10, 10, 20, 20))
    assert not inactive.success and "inactive, not active" in inactive.message
    assert h.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert h.send(scene(), stamp(6)).tracks == []  # deactivate dropped the targets
    assert h.set_target((10, 10, 20, 20)).success
    h.close()


def test_broken_images_are_reported_and_tracking_goes_on(ros_context, executor):
    h = make_harness(ros_context, executor)
    h.send(scene(), stamp(1))
    assert h.set_target((60, 40, 24, 24)).success

    truncated = image_msg(scene(), stamp(2))
    truncated.data = truncated.data[: len(truncated.data) // 2]
    unknown = image_msg(scene(), stamp(3), encoding="yuv422")
    for _ in range(3):
        h.image_pub.publish(truncated)
        h.image_pub.publish(unknown)
    out = h.send(scene(), stamp(4))
    assert [t.age for t in out.tracks] == [1]
    assert h.spin_until(lambda: h.logged("truncated") and h.logged("yuv422"))
    h.spin_until(lambda: False, timeout=0.3)  # give repeats a chance to show up: there must be none
    assert len(h.logged("yuv422")) == 1 and len(h.logged("truncated")) == 1
    assert not h.tracks_at(stamp(2)) and not h.tracks_at(stamp(3))

    bigger = h.send(scene(320, 240), stamp(5))  # the stream changes size
    assert len(bigger.tracks) == 1 and bigger.tracks[0].age == 2
    assert h.logged("image size changed")

    looped = h.send(scene(320, 240), stamp(0, 500))  # a bag loop: time jumps back
    assert looped.header.stamp == stamp(0, 500) and looped.tracks[0].age == 3
    assert h.logged("jumped back")
    stale = h.set_target((10, 10, 20, 20), when=stamp(5))
    assert not stale.success and "unknown stamp" in stale.message
    h.close()


def test_missing_checkpoint_fails_configure_cleanly_and_the_node_stays_up(ros_context, executor, tmp_path):
    h = make_harness(ros_context, executor, checkpoint="/nonexistent/grm.pth", diagnostics_period=0.2)
    assert h.node.lifecycle_state == "unconfigured"
    assert h.spin_until(lambda: h.status() is not None)
    level, message, values = h.status()
    assert level == 2 and values["state"] == "unconfigured"
    assert message.startswith("configure failed") and "not found: /nonexistent/grm.pth" in message
    refused = h.set_target((10, 10, 20, 20))
    assert not refused.success and "unconfigured" in refused.message
    assert "/nonexistent/grm.pth" in refused.message

    # no checkpoint named: the packaged default model
    assert h.set_params(checkpoint="")[0].successful
    assert h.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert h.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert h.send(scene(), stamp(1)).tracks == []
    assert h.spin_until(lambda: h.status()[0] == 0)
    level, message, values = h.status()
    assert message.startswith("active: 0 targets") and values["weights"] == str(DEFAULT_CHECKPOINT)

    # no packaged weights for another variant: allow_random (set by the harness) runs it, and says so
    other = tmp_path / "other.yaml"
    unpackaged = {**load_variant(DEFAULT_VARIANT).to_dict(), "name": "other", "weights": None}
    other.write_text(yaml.safe_dump(unpackaged))
    engine = h.node._engine  # the node's one handle on the network
    assert h.node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert engine.model is not None  # kept for the next activate
    assert h.node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert engine.model is None and h.node._engine is None  # cleanup released it
    assert h.set_params(variant=str(other))[0].successful
    assert h.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert h.node.weights == "RANDOM weights"
    assert h.spin_until(lambda: any("RANDOM weights" in log.msg for log in h.rosout))
    h.close()


def test_corrupt_checkpoint_and_wrong_variant_fail_configure(ros_context, executor, tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x80\x04 this is not a checkpoint")
    for params, reason in (({"checkpoint": str(corrupt)}, f"{corrupt}: not a readable torch checkpoint"),
                           ({"variant": "no_such_variant"}, "variant 'no_such_variant' is neither a builtin"),
                           ({"device": "cuda:7"} if not torch.cuda.is_available() else {"dtype": "fp16"},
                            "CUDA is not available" if not torch.cuda.is_available() else "")):
        h = make_harness(ros_context, executor, diagnostics_period=0.2, **params)
        assert h.node.lifecycle_state == "unconfigured"
        assert h.spin_until(lambda: h.status() is not None)  # noqa: B023 - used before the loop moves on
        assert h.status()[0] == 2 and reason in h.status()[1], h.status()[1]
        h.close()


def test_bad_parameter_values_are_refused_with_the_reason(ros_context, executor):
    h = make_harness(ros_context, executor, autostart=False)
    refused = {
        "detections.policy": h.set_params(detections__policy="random")[0],
        "best_iou": h.set_params(detections__policy="best_iou")[0],
        "recover_threshold": h.set_params(tracker__lost_threshold=0.9)[0],
        "device": h.set_params(device="tpu")[0],
        "detections.min_score": h.set_params(detections__min_score=1.5)[0],
        "hint_box": h.set_params(detections__hint_box=[1.0, 2.0])[0],
        "dtype": h.set_params(dtype="int8")[0],
    }
    for word, result in refused.items():
        assert not result.successful and word in result.reason, (word, result.reason)
    accepted = h.set_params(detections__hint_box=[1.0, 2.0, 3.0, 4.0], detections__policy="best_iou")
    assert all(r.successful for r in accepted)
    assert h.node.get_parameter("detections.policy").value == "best_iou"
    h.close()
