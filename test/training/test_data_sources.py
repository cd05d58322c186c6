import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from grm_ros.datasets import read_uniform
from grm_ros.datasets.coco import read_coco
from grm_ros.training.cli import parse_duration, synth_main
from grm_ros.training.mix import build_source, parse_data_spec
from grm_ros.training.sampler import PairDataset


def _coco(root: Path, annotations: list[dict]) -> Path:
    (root / "annotations").mkdir(parents=True)
    (root / "train2017").mkdir()
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(root / "train2017" / name), np.full((120, 160, 3), 90, np.uint8))
    data = {
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "categories": [{"id": 18, "name": "dog"}, {"id": 3, "name": "car"}],
        "annotations": annotations,
    }
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps(data))
    return root


def test_coco_objects_become_one_frame_sequences(tmp_path):
    root = _coco(
        tmp_path,
        [
            {"id": 7, "image_id": 2, "category_id": 18, "bbox": [10, 20, 30, 40], "iscrowd": 0},
            {"id": 8, "image_id": 1, "category_id": 3, "bbox": [0, 0, 50, 60], "iscrowd": 1},
            {"id": 9, "image_id": 1, "category_id": 3, "bbox": [5, 5, 0.5, 9], "iscrowd": 0},
            {"id": 10, "image_id": 1, "category_id": 3, "bbox": [1.5, 2.5, 20, 10], "iscrowd": 0},
        ],
    )
    objects = read_coco(root)
    assert len(objects) == 2  # the crowd region and the sub-pixel box are skipped
    first, last = objects[0], objects[-1]
    assert first.name == "coco_7" and first.frames == [root / "train2017" / "b.jpg"]
    np.testing.assert_array_equal(first.gt, [[10, 20, 30, 40]])
    assert first.attributes["category"] == "dog" and last.attributes["category"] == "car"
    np.testing.assert_array_equal(last.gt, [[1.5, 2.5, 20, 10]])
    with pytest.raises(IndexError):
        objects[2]


def test_coco_source_trains_on_single_images(tmp_path, tiny_sampler):
    root = _coco(tmp_path, [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [40, 30, 50, 40]}])
    source = build_source(parse_data_spec(f"coco={root}@2"))
    assert not source.is_video and source.weight == 2.0 and len(source) == 1
    item = PairDataset([source], tiny_sampler)[0]
    assert item["search"].shape == (3, 64, 64)


def test_malformed_coco_files_are_reported(tmp_path):
    root = _coco(tmp_path, [{"id": 1, "image_id": 99, "category_id": 3, "bbox": [0, 0, 5, 5]}])
    with pytest.raises(ValueError, match="annotation #0"):
        read_coco(root)
    (root / "annotations" / "instances_train2017.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a COCO"):
        read_coco(root)
    with pytest.raises(FileNotFoundError):
        read_coco(tmp_path / "nowhere")


def test_data_specs_parse_names_paths_and_weights():
    assert parse_data_spec("synthetic").weight == 1.0
    spec = parse_data_spec("lasot=/data/La@SOT@2.5")
    assert spec.name == "lasot" and spec.path == Path("/data/La@SOT") and spec.weight == 2.5
    assert parse_data_spec("got10k=/d/g@x").path == Path("/d/g@x")
    for bad, message in (
        ("imagenet=/x", "unknown source"),
        ("lasot", "needs a path"),
        ("synthetic=/x", "no path"),
        ("got10k=/x@0", "weight"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_data_spec(bad)


def test_durations():
    assert parse_duration("90") == 90 and parse_duration("45m") == 2700 and parse_duration("2.5h") == 9000


def test_synth_cli_writes_heldout_sequences(tmp_path, capsys):
    assert (
        synth_main(
            [
                "--out",
                str(tmp_path),
                "--count",
                "2",
                "--seed",
                "4",
                "--length",
                "6",
                "--size",
                "128x96",
                "--procedural",
            ]
        )
        == 0
    )
    written = capsys.readouterr().out.split()
    assert [Path(p).name for p in written] == ["synth_heldout_s4_00000", "synth_heldout_s4_00001"]
    seq = read_uniform(written[1])
    assert len(seq) == 6
    assert cv2.imread(str(seq.frames[0])).shape == (96, 128, 3)
