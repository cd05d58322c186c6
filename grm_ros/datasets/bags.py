"""rosbag2 in and out without a ROS install (the pure-Python ``rosbags`` package; MCAP or sqlite3).

Robotics users record and debug on bags, so the trackers' inputs and outputs must round-trip through
them. The message definitions written into a bag are the installed interfaces' own: the ``.msg`` files
found through ``AMENT_PREFIX_PATH`` (a ROS install, or this workspace's ``install/``), and for grm_ros
the source tree's ``msg/``; types found nowhere fall back to rosbags' copy of the Kilted definitions.
The RIHS01 type hashes then equal those of the installed packages, so ``ros2 bag info`` and
``ros2 bag play`` on a real install accept the bag.

``grm-bag make`` turns a folder of frames (and optionally its groundtruth.txt, as a
vision_msgs/Detection2DArray per frame on ``/groundtruth``) into an image bag at a fixed rate.
Everything that can go wrong with a bag ends in ``BagError``, one line that names the bag.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.interfaces import Connection
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from grm_ros.datasets.sequence import list_images, read_boxes

NS = 1_000_000_000
INTERFACE_PACKAGES = ("builtin_interfaces", "std_msgs", "geometry_msgs", "sensor_msgs", "vision_msgs",
                      "grm_ros")
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
TRACK_ARRAY = "grm_ros/msg/TrackArray"
DETECTION_ARRAY = "vision_msgs/msg/Detection2DArray"
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
GROUNDTRUTH_TOPIC = "/groundtruth"
DEFAULT_START = 1_700_000_000.0  # s; a zero stamp means "the latest frame" to the node, so never start there
_SOURCE_MSG = Path(__file__).resolve().parents[2] / "msg"  # grm_ros's own definitions in a source checkout


class BagError(ValueError):
    """A bag that cannot be read or written as asked; the message is one line and names the bag."""


def definition_dirs(package: str) -> list[Path]:
    """Folders holding ``package``'s installed ``.msg`` files, in ``AMENT_PREFIX_PATH`` order."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    dirs = [Path(p, "share", package, "msg") for p in prefixes]
    if package == "grm_ros":
        dirs.append(_SOURCE_MSG)
    return [d for d in dirs if d.is_dir()]


@functools.cache
def typestore() -> Typestore:
    """A typestore of the installed definitions (the first prefix that has a type wins), Kilted's else."""
    installed: dict[str, Any] = {}
    for package in INTERFACE_PACKAGES:
        for folder in reversed(definition_dirs(package)):  # earlier prefixes overlay later ones
            for path in sorted(folder.glob("*.msg")):
                installed.update(get_types_from_msg(path.read_text(), f"{package}/msg/{path.stem}"))
    store = get_typestore(Stores.EMPTY)
    store.register(installed)
    kilted = get_typestore(Stores.ROS2_KILTED).fielddefs
    store.register({name: fields for name, fields in kilted.items() if name not in store.fielddefs})
    return store


def has_type(msgtype: str) -> bool:
    return msgtype in typestore().fielddefs


def new(msgtype: str, **fields: Any) -> Any:
    """A message of ``msgtype`` (a rosbags dataclass) from keyword fields."""
    return typestore().types[msgtype](**fields)


def header(stamp_ns: int, frame_id: str) -> Any:
    stamp = new("builtin_interfaces/msg/Time", sec=stamp_ns // NS, nanosec=stamp_ns % NS)
    return new("std_msgs/msg/Header", stamp=stamp, frame_id=frame_id)


def stamp_ns(msg_header: Any) -> int:
    return int(msg_header.stamp.sec) * NS + int(msg_header.stamp.nanosec)


def detection(msg_header: Any, box: Sequence[float], detection_id: str, class_id: str, score: float) -> Any:
    """A vision_msgs/Detection2D of an (x, y, w, h) box: centre + size, one hypothesis."""
    x, y, w, h = (float(v) for v in box)
    d = new("vision_msgs/msg/Detection2D", header=msg_header, results=[], id=detection_id,
            bbox=new("vision_msgs/msg/BoundingBox2D", size_x=w, size_y=h,
                     center=new("vision_msgs/msg/Pose2D", theta=0.0,
                                position=new("vision_msgs/msg/Point2D", x=x + w / 2, y=y + h / 2))))
    pose = new("geometry_msgs/msg/PoseWithCovariance", covariance=np.zeros(36),
               pose=new("geometry_msgs/msg/Pose",
                        position=new("geometry_msgs/msg/Point", x=0.0, y=0.0, z=0.0),
                        orientation=new("geometry_msgs/msg/Quaternion", x=0.0, y=0.0, z=0.0, w=1.0)))
    d.results.append(new("vision_msgs/msg/ObjectHypothesisWithPose", pose=pose,
                         hypothesis=new("vision_msgs/msg/ObjectHypothesis", class_id=class_id,
                                        score=float(score))))
    return d


def detection_box(d: Any) -> tuple[tuple[float, float, float, float], str, float]:
    """(x, y, w, h), class and score of a Detection2D: its best-scored hypothesis (none: "", 1.0)."""
    best = max(d.results, key=lambda r: r.hypothesis.score, default=None)
    cx, cy, w, h = d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.size_x, d.bbox.size_y
    box = (cx - w / 2, cy - h / 2, w, h)
    return box, (best.hypothesis.class_id if best else ""), (best.hypothesis.score if best else 1.0)


class BagReader:
    """A rosbag2 opened for reading (context manager); rosbags' failures become one-line ``BagError``s."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._reader: AnyReader | None = None

    def _fail(self, err: Exception) -> BagError:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return BagError(f"cannot read bag {self.path}: {reason} (truncated or corrupt?)")

    def __enter__(self) -> BagReader:
        if not (self.path / "metadata.yaml").is_file():
            raise BagError(f"{self.path} is not a rosbag2 folder (no {self.path / 'metadata.yaml'})")
        try:
            self._reader = AnyReader([self.path], default_typestore=typestore())
            self._reader.open()
        except Exception as err:  # rosbags raises its own, sqlite3's and yaml's errors for a damaged bag
            raise self._fail(err) from None
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._reader.close()

    @property
    def topics(self) -> dict[str, str]:
        """Topic -> message type of every topic in the bag."""
        return {name: info.msgtype or "" for name, info in sorted(self._reader.topics.items())}

    def require(self, topic: str, types: Sequence[str]) -> str:
        """The type of ``topic``, which must be one of ``types``; else an error listing what the bag has."""
        have = self.topics
        listing = ", ".join(f"{t} ({m})" for t, m in have.items()) or "none"
        if topic not in have:
            raise BagError(f"bag {self.path} has no topic {topic}; its topics: {listing}")
        if have[topic] not in types:
            raise BagError(f"topic {topic} in bag {self.path} is {have[topic]}, not {' or '.join(types)}")
        return have[topic]

    def count(self, topic: str) -> int:
        return sum(c.msgcount for c in self._connections(topic))

    def _connections(self, *topics: str) -> list[Connection]:
        return [c for c in self._reader.connections if c.topic in topics]

    def messages(self, *topics: str) -> Iterator[tuple[str, int, Any]]:
        """(topic, log time in ns, deserialized message) in log-time order."""
        try:
            for connection, timestamp, raw in self._reader.messages(connections=self._connections(*topics)):
                yield connection.topic, timestamp, self._reader.deserialize(raw, connection.msgtype)
        except BagError:
            raise
        except Exception as err:  # a damaged chunk or message surfaces only while iterating
            raise self._fail(err) from None


class BagWriter:
    """A new rosbag2 (context manager); a failure part-way removes the half-written bag."""

    def __init__(self, path: Path, storage: str = "mcap") -> None:
        if storage not in STORAGES:
            raise BagError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path} exists already; a bag is never overwritten")
        self._writer = Writer(self.path, version=Writer.VERSION_LATEST, storage_plugin=STORAGES[storage])

    def __enter__(self) -> BagWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer.open()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is None:
            self._writer.close()
            return
        self._writer.abort()
        shutil.rmtree(self.path, ignore_errors=True)

    def topic(self, name: str, msgtype: str) -> Connection:
        return self._writer.add_connection(name, msgtype, typestore=typestore())

    def write(self, connection: Connection, timestamp: int, msg: Any) -> None:
        self._writer.write(connection, timestamp, typestore().serialize_cdr(msg, connection.msgtype))


def image_message(path: Path, msg_header: Any, compressed: bool) -> Any:
    """The frame file as a CompressedImage (its own bytes: no re-encoding) or a bgr8 Image."""
    if compressed:
        fmt = "jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else path.suffix.lower().lstrip(".")
        return new(COMPRESSED_IMAGE, header=msg_header, format=fmt,
                   data=np.frombuffer(path.read_bytes(), np.uint8))
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise BagError(f"cannot read frame {path}")
    height, width = bgr.shape[:2]
    return new(IMAGE, header=msg_header, height=height, width=width, encoding="bgr8", is_bigendian=0,
               step=width * 3, data=np.ascontiguousarray(bgr).reshape(-1))


def make_bag(frames: Sequence[Path], out: Path, fps: float, topic: str, gt: np.ndarray | None = None,
             compressed: bool = False, start: float = DEFAULT_START, frame_id: str = "camera",
             storage: str = "mcap") -> int:
    """Write ``frames`` as images at ``fps``, ``gt`` rows as detections on /groundtruth; returns the count.

    Frame k is stamped (and logged) at ``start + k / fps`` seconds; a NaN row is an empty detection array.
    """
    if gt is not None and len(gt) != len(frames):
        raise BagError(f"{len(gt)} ground-truth boxes but {len(frames)} frames")
    with BagWriter(out, storage) as writer:
        images = writer.topic(topic, COMPRESSED_IMAGE if compressed else IMAGE)
        truth = writer.topic(GROUNDTRUTH_TOPIC, DETECTION_ARRAY) if gt is not None else None
        for k, path in enumerate(frames):
            when = round(start * NS) + round(k * NS / fps)
            msg_header = header(when, frame_id)
            writer.write(images, when, image_message(path, msg_header, compressed))
            if truth is not None:
                visible = np.isfinite(gt[k]).all()
                found = [detection(msg_header, gt[k], "groundtruth", "target", 1.0)] if visible else []
                writer.write(truth, when, new(DETECTION_ARRAY, header=msg_header, detections=found))
    return len(frames)


def track_boxes(path: Path, topic: str, track_id: int | None = None) -> tuple[int, np.ndarray]:
    """One (x, y, w, h) row per TrackArray on ``topic``, in log order, for the track ``track_id``.

    ``track_id`` None: the first track id that appears. A frame without that track is a NaN row (the
    evaluation's failure), any state included: OPE scores the tracker's guess, LOST or not.
    """
    rows: list[tuple[float, float, float, float]] = []
    with BagReader(path) as reader:
        reader.require(topic, (TRACK_ARRAY,))
        for _, _, msg in reader.messages(topic):
            if track_id is None and msg.tracks:
                track_id = int(msg.tracks[0].id)
            found = [t for t in msg.tracks if t.id == track_id]
            rows.append((found[0].center_x - found[0].size_x / 2, found[0].center_y - found[0].size_y / 2,
                         found[0].size_x, found[0].size_y) if found else (math.nan,) * 4)
    if track_id is None:
        raise BagError(f"no track on {topic} in bag {path}")
    return track_id, np.array(rows, dtype=np.float64).reshape(-1, 4)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grm-bag", description="rosbag2 tools for grm_ros")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make", help="a folder of frames (and its ground truth) -> an image bag")
    make.add_argument("--frames", type=Path, required=True, help="folder of frames, in name order")
    make.add_argument("--gt", type=Path, help="groundtruth.txt (x,y,w,h a frame) -> /groundtruth detections")
    make.add_argument("--out", type=Path, required=True, help="new bag folder")
    make.add_argument("--fps", type=float, default=30.0, help="frame rate of the stamps")
    make.add_argument("--topic", help="image topic (default /camera/image_raw[/compressed])")
    make.add_argument("--compressed", action="store_true",
                      help="sensor_msgs/CompressedImage holding each file's bytes instead of bgr8 Images")
    make.add_argument("--start", type=float, default=DEFAULT_START, help="stamp of the first frame, seconds")
    make.add_argument("--frame-id", default="camera")
    make.add_argument("--storage", choices=sorted(STORAGES), default="mcap")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (math.isfinite(args.fps) and args.fps > 0) or not math.isfinite(args.start) or args.start <= 0:
        parser.error("--fps and --start must be positive numbers")
    topic = args.topic or ("/camera/image_raw/compressed" if args.compressed else "/camera/image_raw")
    try:
        frames = list_images(args.frames)
        gt = read_boxes(args.gt) if args.gt is not None else None
        count = make_bag(frames, args.out, args.fps, topic, gt, args.compressed, args.start, args.frame_id,
                         args.storage)
    except (BagError, ValueError, FileNotFoundError) as err:
        print(f"grm-bag: error: {err}", file=sys.stderr)
        return 2
    truth = f" and ground truth on {GROUNDTRUTH_TOPIC}" if gt is not None else ""
    print(f"grm-bag: {count} frames on {topic}{truth} at {args.fps:g} fps written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
