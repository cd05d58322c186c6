"""The node with no checkpoint named runs the shipped default model and follows a held-out video: frames
in on ``image``, the target set through ``~/set_target``, boxes read back from ``~/tracks``.

test/tracking/test_default_model.py establishes that the model tracks; this test shows that the node
delivers the same tracking. Video 14 of that held-out set is one the library tracker follows (mean IoU
0.87 measured with nanostem_256, a static box 0.04), so the node must match the library's boxes frame by
frame and clear the same bars there.
"""

from __future__ import annotations

import numpy as np

from grm_ros.boxes import iou
from grm_ros.model import DEFAULT_CHECKPOINT
from grm_ros.msg import Track
from grm_ros.tracking import build_tracker

from held_out_tracking import assert_tracks, follow, held_out_video, mean_ious
from node_harness import make_harness, stamp


def test_node_tracks_a_held_out_video_with_the_default_model(ros_context, executor):
    assert DEFAULT_CHECKPOINT.is_file(), "the default model must ship with the package"
    video = held_out_video(14)
    h = make_harness(ros_context, executor, allow_random=False, reliable_image=True)
    assert h.node.lifecycle_state == "active", h.node.error
    h.send(video.frame(0), stamp(1))
    reply = h.set_target(tuple(video.gt[0]), when=stamp(1), label="held-out")
    assert reply.success, reply.message
    boxes, tracking = [video.gt[0]], [True]
    for k in range(1, len(video)):
        (track,) = h.send(video.frame(k), stamp(1 + k)).tracks  # one frame at a time: none dropped
        boxes.append([track.center_x - track.size_x / 2, track.center_y - track.size_y / 2,
                      track.size_x, track.size_y])
        tracking.append(track.state == Track.STATE_TRACKING)
    h.close()
    boxes = np.asarray(boxes)

    library_boxes, library_tracking = follow(build_tracker(), video)
    agreement = iou(boxes, library_boxes)
    assert agreement.min() > 0.99, f"node and library boxes differ (min IoU {agreement.min():.3f})"
    assert tracking == library_tracking.tolist(), "node and library disagree on the state"
    assert_tracks(*mean_ious(video, boxes), "node")
