"""rosbag2 round trip: folder -> bag (grm-bag make) -> tracks bag (grm-track --bag) -> grm-eval --bag.

The numbers must equal the folder evaluation's for the same frames; the definitions written into the
bags must be the installed interfaces' (their RIHS01 hashes); damaged bags and missing topics must end
in one line.
"""

from __future__ import annotations

import csv
import json
import math
import re

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from grm_ros.datasets import bags, read_uniform
from grm_ros.evaluation import cli as eval_cli
from grm_ros.tracking import cli as track_cli

FRAMES = 30
MODEL = ["--variant", "small_cpu"]  # the packaged model, named: the default may change


@pytest.fixture(scope="module")
def clip(tmp_path_factory, shared_data):
    """The first FRAMES frames of a ../shared/sot sequence (links, not copies) and their ground truth."""
    sequence = read_uniform(shared_data("sot", "Crossing")).head(FRAMES)
    folder = tmp_path_factory.mktemp("Crossing")
    (folder / "img").mkdir()
    for path in sequence.frames:
        (folder / "img" / path.name).symlink_to(path)
    np.savetxt(folder / "groundtruth.txt", sequence.gt, fmt="%.2f", delimiter=",")
    return folder, sequence


def _report(folder) -> dict[str, str]:
    with (folder / "report.csv").open() as fh:
        return next(csv.DictReader(fh))


def _header(msg) -> tuple[int, str]:
    """A header as plain values: each reader builds its own message classes."""
    return bags.stamp_ns(msg.header), msg.header.frame_id


def _one_line_error(capsys, prog: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{prog}: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("compressed, storage", [(True, "sqlite3"), (False, "mcap")])
def test_round_trip_gives_the_folder_evaluations_numbers(clip, tmp_path, capsys, compressed, storage):
    folder, sequence = clip
    images = tmp_path / "images"
    make = ["make", "--frames", str(folder / "img"), "--gt", str(folder / "groundtruth.txt"), "--out",
            str(images), "--fps", "10", "--storage", storage, *(["--compressed"] if compressed else [])]
    assert bags.main(make) == 0
    topic = "/camera/image_raw/compressed" if compressed else "/camera/image_raw"
    box = ",".join(f"{v:g}" for v in sequence.gt[0])
    assert track_cli.main(["--bag", str(images), "--image-topic", topic, "--box", box, "--out",
                           str(tmp_path / "tracks"), *MODEL]) == 0
    err = capsys.readouterr().err
    assert re.search(rf"{FRAMES}/{FRAMES} frames, [\d.]+ fps\n", err), err  # the progress bar, with fps
    assert eval_cli.main(["--bag", str(tmp_path / "tracks"), "--gt", str(folder / "groundtruth.txt"),
                          "--out", str(tmp_path / "from_bag")]) == 0
    assert eval_cli.main(["--trackers", "grm", "--root", str(folder.parent), "--sequences", folder.name,
                          "--out", str(tmp_path / "from_folder"), *MODEL]) == 0

    from_bag, from_folder = _report(tmp_path / "from_bag"), _report(tmp_path / "from_folder")
    for key in ("frames", "scored", "auc", "p20", "np20", "miou", "sr50", "sr75", "failed"):
        assert from_bag[key] == from_folder[key], key
    assert float(from_bag["auc"]) > 0.3  # a real score, not two equal zeros
    _, boxes = bags.track_boxes(tmp_path / "tracks", "/grm_tracker/tracks")
    raw = tmp_path / "from_folder" / "results" / "grm" / f"{folder.name}.txt"
    np.testing.assert_allclose(boxes, np.loadtxt(raw, delimiter=","), atol=1e-3)  # the file keeps 4 decimals


def test_tracks_are_logged_beside_the_camera_with_its_headers(clip, tmp_path):
    _, sequence = clip
    bags.make_bag(sequence.frames[:5], tmp_path / "in", fps=4.0, topic="/cam/image", start=50.0)
    assert track_cli.main(["--bag", str(tmp_path / "in"), "--image-topic", "/cam/image", "--box",
                           "205,151,17,50", "--out", str(tmp_path / "out"), *MODEL]) == 0
    with AnyReader([tmp_path / "in"]) as reader:
        cam = [(t, _header(reader.deserialize(raw, c.msgtype))) for c, t, raw in reader.messages()]
    with AnyReader([tmp_path / "out"]) as reader:
        out = [(c.topic, t, reader.deserialize(raw, c.msgtype)) for c, t, raw in reader.messages()]
    assert [t for t, _ in cam] == [50 * 10**9 + k * 250_000_000 for k in range(5)]
    for topic in ("/grm_tracker/tracks", "/grm_tracker/detections"):
        mine = [(t, m) for name, t, m in out if name == topic]
        assert [t for t, _ in mine] == [t for t, _ in cam]
        assert [_header(m) for _, m in mine] == [h for _, h in cam]
    tracks = [m for name, _, m in out if name == "/grm_tracker/tracks"]
    first = tracks[0].tracks[0]
    assert (first.center_x, first.center_y, first.size_x, first.size_y) == (213.5, 176.0, 17, 50)
    assert [a.tracks[0].age for a in tracks] == [0, 1, 2, 3, 4] and {a.tracks[0].id for a in tracks} == {1}
    detections = [m for name, _, m in out if name == "/grm_tracker/detections"]
    assert detections[2].detections[0].id == "1"
    assert detections[2].detections[0].bbox.size_x == tracks[2].tracks[0].size_x


def test_written_definitions_are_the_installed_interfaces(clip, tmp_path):
    _, sequence = clip
    bags.make_bag(sequence.frames[:2], tmp_path / "raw", 10.0, "/image", sequence.gt[:2])
    bags.make_bag(sequence.frames[:2], tmp_path / "jpeg", 10.0, "/image/compressed", compressed=True)
    assert track_cli.main(["--bag", str(tmp_path / "raw"), "--image-topic", "/image", "--box",
                           "205,151,17,50", "--out", str(tmp_path / "tracks"), *MODEL]) == 0
    written = {}
    for name in ("raw", "jpeg", "tracks"):
        with AnyReader([tmp_path / name]) as reader:
            written.update({c.msgtype: c.digest for c in reader.connections})
    assert set(written) == {bags.IMAGE, bags.COMPRESSED_IMAGE, bags.DETECTION_ARRAY, bags.TRACK_ARRAY}
    for msgtype, digest in written.items():
        package, _, name = msgtype.split("/")
        described = [d / f"{name}.json" for d in bags.definition_dirs(package)
                     if (d / f"{name}.json").is_file()]
        assert described, f"no installed description of {msgtype}"  # rosidl writes one per interface
        listed = json.loads(described[0].read_text())["type_hashes"]
        hashes = {h["type_name"]: h["hash_string"] for h in listed}
        assert digest == hashes[msgtype], msgtype


def test_detections_in_the_bag_start_the_target(clip, tmp_path):
    _, sequence = clip
    gt = sequence.gt[:4].copy()
    gt[0] = math.nan  # no detection on the first frame: the target starts on the second
    bags.make_bag(sequence.frames[:4], tmp_path / "in", 10.0, "/image", gt)
    assert track_cli.main(["--bag", str(tmp_path / "in"), "--image-topic", "/image", "--detections-topic",
                           bags.GROUNDTRUTH_TOPIC, "--out", str(tmp_path / "out"), *MODEL]) == 0
    with bags.BagReader(tmp_path / "out") as reader:
        arrays = [m for _, _, m in reader.messages("/grm_tracker/tracks")]
    assert [len(a.tracks) for a in arrays] == [0, 1, 1, 1]
    started = arrays[1].tracks[0]
    assert started.label == "target" and started.age == 0
    assert (started.center_x - started.size_x / 2, started.size_y) == pytest.approx((gt[1][0], gt[1][3]))


def test_grm_bag_make_writes_stamps_and_ground_truth(tmp_path, capsys):
    (tmp_path / "img").mkdir()
    for k in range(3):
        cv2.imwrite(str(tmp_path / "img" / f"{k + 1:05d}.png"), np.full((20, 30, 3), 40 * k, np.uint8))
    (tmp_path / "gt.txt").write_text("1,2,10,8\nnan,nan,nan,nan\n3,4,10,8\n")
    assert bags.main(["make", "--frames", str(tmp_path / "img"), "--gt", str(tmp_path / "gt.txt"), "--out",
                      str(tmp_path / "bag"), "--fps", "20", "--start", "7"]) == 0
    assert "3 frames on /camera/image_raw and ground truth on /groundtruth" in capsys.readouterr().out
    with bags.BagReader(tmp_path / "bag") as reader:
        assert reader.topics == {"/camera/image_raw": bags.IMAGE, "/groundtruth": bags.DETECTION_ARRAY}
        messages = list(reader.messages("/camera/image_raw", "/groundtruth"))
    images = [(t, m) for topic, t, m in messages if topic == "/camera/image_raw"]
    truth = [m for topic, _, m in messages if topic == "/groundtruth"]
    assert [t for t, _ in images] == [7_000_000_000, 7_050_000_000, 7_100_000_000]
    assert [bags.stamp_ns(m.header) for _, m in images] == [t for t, _ in images]
    assert images[2][1].encoding == "bgr8" and images[2][1].data.reshape(20, 30, 3)[0, 0].tolist() == [80] * 3
    assert [len(m.detections) for m in truth] == [1, 0, 1]
    assert bags.detection_box(truth[2].detections[0]) == ((3.0, 4.0, 10.0, 8.0), "target", 1.0)

    (tmp_path / "short.txt").write_text("1,2,10,8\n")
    assert bags.main(["make", "--frames", str(tmp_path / "img"), "--gt", str(tmp_path / "short.txt"),
                      "--out", str(tmp_path / "bag2")]) == 2
    assert "1 ground-truth boxes but 3 frames" in _one_line_error(capsys, "grm-bag")
    assert not (tmp_path / "bag2").exists()  # nothing half-written is left behind
    assert bags.main(["make", "--frames", str(tmp_path / "img"), "--out", str(tmp_path / "bag")]) == 2
    assert "exists already" in _one_line_error(capsys, "grm-bag")


@pytest.mark.parametrize("storage, damage", [("mcap", "truncate"), ("sqlite3", "truncate"),
                                             ("mcap", "garbage")])
def test_a_damaged_bag_ends_in_one_line(clip, tmp_path, capsys, storage, damage):
    folder, sequence = clip
    bags.make_bag(sequence.frames[:3], tmp_path / "in", 10.0, "/image", storage=storage)
    data = next(p for p in (tmp_path / "in").iterdir() if p.suffix in (".mcap", ".db3"))
    content = data.read_bytes()
    data.write_bytes(content[: len(content) // 2] if damage == "truncate" else bytes(len(content)))
    args = ["--image-topic", "/image", "--box", "205,151,17,50", "--out", str(tmp_path / "out"), *MODEL]
    assert track_cli.main(["--bag", str(tmp_path / "in"), *args]) == 2
    assert f"cannot read bag {tmp_path / 'in'}" in _one_line_error(capsys, "grm-track")
    assert not (tmp_path / "out").exists()
    assert eval_cli.main(["--bag", str(tmp_path / "in"), "--gt", str(folder / "groundtruth.txt")]) == 2
    assert "cannot read bag" in _one_line_error(capsys, "grm-eval")
    (tmp_path / "empty").mkdir()
    assert track_cli.main(["--bag", str(tmp_path / "empty"), *args]) == 2
    assert "not a rosbag2 folder" in _one_line_error(capsys, "grm-track")


def test_a_missing_topic_is_named_with_the_topics_the_bag_has(clip, tmp_path, capsys):
    folder, sequence = clip
    bags.make_bag(sequence.frames[:2], tmp_path / "in", 10.0, "/front/image_raw", sequence.gt[:2])
    base = ["--bag", str(tmp_path / "in"), "--box", "205,151,17,50", "--out", str(tmp_path / "out"), *MODEL]
    assert track_cli.main([*base, "--image-topic", "/camera/image_raw"]) == 2
    assert _one_line_error(capsys, "grm-track") == (
        f"grm-track: error: bag {tmp_path / 'in'} has no topic /camera/image_raw; its topics: "
        "/front/image_raw (sensor_msgs/msg/Image), /groundtruth (vision_msgs/msg/Detection2DArray)")
    assert track_cli.main([*base, "--image-topic", "/groundtruth"]) == 2
    assert "is vision_msgs/msg/Detection2DArray, not sensor_msgs/msg/Image or" in _one_line_error(capsys,
                                                                                                   "grm-track")
    assert eval_cli.main(["--bag", str(tmp_path / "in"), "--gt", str(folder / "groundtruth.txt")]) == 2
    err = _one_line_error(capsys, "grm-eval")
    assert "has no topic /grm_tracker/tracks; its topics: /front/image_raw" in err
    with pytest.raises(SystemExit):  # a bag needs its topic and one way to start
        track_cli.main(["--bag", str(tmp_path / "in"), "--image-topic", "/front/image_raw", "--out", "x"])
    assert "exactly one of --box or --detections-topic" in capsys.readouterr().err
