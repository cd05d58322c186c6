"""``grm-track --bag``: the tracker over a recorded camera topic, tracks written to a new bag.

What the node would have published, offline and without dropping frames: for every image on the
topic one grm_ros/TrackArray (and, where vision_msgs is installed, one vision_msgs/Detection2DArray)
with the image's header, logged at the image's own log time, so the result plays back beside the
camera bag in any ROS 2 tool. Targets come from one ``--box`` on the first frame, or from a
detections topic in the same bag: each Detection2DArray applies to the image with its header stamp,
through the node's selection rules (``grm_ros.tracking.selection``). No rclpy: rosbags reads and
writes (``grm_ros.datasets.bags``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grm_ros.console import ProgressBar
from grm_ros.datasets import bags
from grm_ros.ros.image_conversion import ImageConversionError, compressed_to_rgb, raw_to_rgb
from grm_ros.tracking.selection import Detection, Reacquire, SelectionConfig, plan
from grm_ros.tracking.tracker import Tracker, TrackResult

TRACKS_TOPIC = "/grm_tracker/tracks"
DETECTIONS_TOPIC = "/grm_tracker/detections"


@dataclass
class BagRun:
    """What a run did: frames tracked, frames whose image could not be decoded (first reason kept)."""

    frames: int = 0
    bad_images: int = 0
    first_bad_image: str = ""
    unmatched_detections: int = 0
    detections_written: bool = False


def decode(msg: Any) -> Any:
    """RGB pixels of a rosbags sensor_msgs Image or CompressedImage (the node's conversion rules)."""
    if hasattr(msg, "format"):
        return compressed_to_rgb(msg.format, msg.data)
    return raw_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data, bool(msg.is_bigendian))


def result_of(tracker: Tracker, target_id: int) -> TrackResult:
    """The result a target has on the frame that (re)started it: its start box, age 0."""
    t = tracker.targets[target_id]
    return TrackResult(t.target_id, tuple(float(v) for v in t.box), t.confidence, t.state, t.age, t.label)


def track_array(msg_header: Any, results: list[TrackResult]) -> Any:
    tracks = [bags.new("grm_ros/msg/Track", header=msg_header, id=r.target_id, state=int(r.state),
                       label=r.label, center_x=r.box[0] + r.box[2] / 2, center_y=r.box[1] + r.box[3] / 2,
                       size_x=r.box[2], size_y=r.box[3], confidence=float(r.confidence), age=r.age)
              for r in results]
    return bags.new(bags.TRACK_ARRAY, header=msg_header, tracks=tracks)


def detection_array(msg_header: Any, results: list[TrackResult]) -> Any:
    """As the node's ~/detections: id = track id, class = label, score = confidence."""
    found = [bags.detection(msg_header, r.box, str(r.target_id), r.label, r.confidence) for r in results]
    return bags.new(bags.DETECTION_ARRAY, header=msg_header, detections=found)


def _read_detections(reader: bags.BagReader, topic: str) -> dict[int, list[Detection]]:
    by_stamp: dict[int, list[Detection]] = defaultdict(list)
    for _, _, msg in reader.messages(topic):
        by_stamp[bags.stamp_ns(msg.header)].extend(Detection(*bags.detection_box(d)) for d in msg.detections)
    return by_stamp


def _apply_detections(tracker: Tracker, frame: Any, detections: list[Detection], selection: SelectionConfig,
                      results: dict[int, TrackResult]) -> None:
    """Start and re-acquire targets from this frame's detections, as the node does."""
    height, width = frame.shape[:2]
    for action in plan(list(tracker.targets.values()), detections, selection, width, height):
        try:
            if isinstance(action, Reacquire):
                tracker.reacquire(action.target_id, frame, action.detection.box)
                target_id = action.target_id
            else:
                target_id = tracker.start(frame, action.detection.box, label=action.detection.label)
        except ValueError:  # a box the tracker refuses is skipped, as the node skips it
            continue
        results[target_id] = result_of(tracker, target_id)


def track_bag(make_tracker: Callable[[], Tracker], bag: Path, image_topic: str, out: Path,
              box: tuple[float, ...] | None = None, detections_topic: str | None = None,
              selection: SelectionConfig | None = None, storage: str = "mcap",
              progress: bool = True) -> BagRun:
    """Track ``image_topic`` of ``bag`` into the new bag ``out``; see the module docstring.

    The tracker is made only once the bag has been found to hold the topics, so a wrong bag or topic
    is reported without waiting for the model to load.
    """
    if (box is None) == (detections_topic is None):
        raise ValueError("give either a start box or a detections topic")
    run = BagRun()
    selection = selection or SelectionConfig()
    with bags.BagReader(bag) as reader:
        reader.require(image_topic, bags.IMAGE_TYPES)
        detections = {}
        if detections_topic is not None:
            reader.require(detections_topic, (bags.DETECTION_ARRAY,))
            detections = _read_detections(reader, detections_topic)
        run.detections_written = bags.has_type(bags.DETECTION_ARRAY)
        tracker = make_tracker()
        matched: set[int] = set()
        with bags.BagWriter(out, storage) as writer:
            tracks_out = writer.topic(TRACKS_TOPIC, bags.TRACK_ARRAY)
            detections_out = writer.topic(DETECTIONS_TOPIC, bags.DETECTION_ARRAY) if run.detections_written \
                else None
            bar = ProgressBar(reader.count(image_topic), progress)
            try:
                for _, timestamp, msg in reader.messages(image_topic):
                    bar.update()
                    try:
                        frame = decode(msg)
                    except ImageConversionError as err:
                        run.bad_images += 1
                        run.first_bad_image = run.first_bad_image or f"{bags.stamp_ns(msg.header)}: {err}"
                        continue
                    results = {r.target_id: r for r in tracker.update(frame)}
                    if box is not None and run.frames == 0:
                        target_id = tracker.start(frame, box)
                        results[target_id] = result_of(tracker, target_id)
                    stamp = bags.stamp_ns(msg.header)
                    if stamp in detections:
                        matched.add(stamp)
                        _apply_detections(tracker, frame, detections[stamp], selection, results)
                    ordered = [results[i] for i in sorted(results)]
                    writer.write(tracks_out, timestamp, track_array(msg.header, ordered))
                    if detections_out is not None:
                        writer.write(detections_out, timestamp, detection_array(msg.header, ordered))
                    run.frames += 1
            finally:
                bar.close()
            if run.frames == 0:  # raised inside the writer: the empty bag is removed
                raise bags.BagError(f"no image on {image_topic} in bag {bag} could be decoded"
                                    + (f" ({run.first_bad_image})" if run.first_bad_image else ""))
        run.unmatched_detections = len(set(detections) - matched)
    return run
