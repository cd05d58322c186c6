"""Sequence readers on miniature copies of each benchmark layout, and their error messages."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from grm_ros.datasets import (
    list_sequences,
    load_frame,
    parse_uav_config,
    read_boxes,
    read_got10k,
    read_lasot,
    read_otb,
    read_uav123,
)


def _frames(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        cv2.imwrite(str(folder / name), np.zeros((8, 8, 3), np.uint8))


def _boxes(path: Path, n: int, absent: tuple[int, ...] = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["nan,nan,nan,nan" if i in absent else f"{i},{i},4,5" for i in range(n)]
    path.write_text("\n".join(rows) + "\n")


def test_uniform_layout_with_absent_rows(tmp_path):
    _frames(tmp_path / "seqA" / "img", [f"{i:05d}.jpg" for i in range(1, 4)])
    _boxes(tmp_path / "seqA" / "groundtruth.txt", 3, absent=(1,))
    (seq,) = list_sequences(tmp_path, "uniform")
    assert seq.name == "seqA" and len(seq) == 3
    assert seq.visible.tolist() == [True, False, True]
    assert seq.head(2).gt.shape == (2, 4)


def test_malformed_box_file_names_file_and_line(tmp_path):
    path = tmp_path / "groundtruth.txt"
    path.write_text("1,2,3,4\n1,2,3\n")
    with pytest.raises(ValueError, match=r"groundtruth.txt:2: expected 4 numbers"):
        read_boxes(path)
    path.write_text("1,2,3,4\n1,2,x,4\n")
    with pytest.raises(ValueError, match=r"groundtruth.txt:2: not a number"):
        read_boxes(path)


def test_frame_count_mismatch_is_an_error(tmp_path):
    _frames(tmp_path / "s" / "img", ["00001.jpg", "00002.jpg"])
    _boxes(tmp_path / "s" / "groundtruth.txt", 3)
    with pytest.raises(ValueError, match="3 boxes but 2 frames"):
        list_sequences(tmp_path, "uniform")


def test_otb_tabs_multi_target_and_start_frame(tmp_path):
    _frames(tmp_path / "Jogging" / "img", [f"{i:04d}.jpg" for i in range(1, 4)])
    (tmp_path / "Jogging" / "groundtruth_rect.1.txt").write_text("1\t2\t3\t4\n1\t2\t3\t4\n1\t2\t3\t4\n")
    (tmp_path / "Jogging" / "groundtruth_rect.2.txt").write_text("5 6 7 8\n5 6 7 8\n5 6 7 8\n")
    names = [s.name for s in list_sequences(tmp_path, "otb")]
    assert names == ["Jogging-1", "Jogging-2"]
    _frames(tmp_path / "Late" / "img", [f"{i:04d}.jpg" for i in range(1, 6)])
    _boxes(tmp_path / "Late" / "groundtruth_rect.txt", 2)
    with pytest.raises(ValueError, match="start_frame"):
        read_otb(tmp_path / "Late")
    seq = read_otb(tmp_path / "Late", start_frame=4)
    assert [p.name for p in seq.frames] == ["0004.jpg", "0005.jpg"]


def test_lasot_flags_mark_absence(tmp_path):
    d = tmp_path / "cat" / "cat-1"
    _frames(d / "img", [f"{i:08d}.jpg" for i in range(1, 5)])
    _boxes(d / "groundtruth.txt", 4)
    (d / "full_occlusion.txt").write_text("0,1,0,0")
    (d / "out_of_view.txt").write_text("0,0,0,1")
    (seq,) = list_sequences(tmp_path, "lasot")
    assert seq.visible.tolist() == [True, False, True, False]
    (d / "out_of_view.txt").write_text("0,0,0")
    with pytest.raises(ValueError, match=r"out_of_view\.txt: 3 labels but the sequence has 4 frames"):
        read_lasot(d)


def test_got10k_absence_cover_and_test_split(tmp_path):
    d = tmp_path / "val" / "GOT-10k_Val_000001"
    _frames(d, [f"{i:08d}.jpg" for i in range(1, 5)])
    _boxes(d / "groundtruth.txt", 4)
    (d / "absence.label").write_text("0\n0\n1\n0\n")
    (d / "cover.label").write_text("8\n0\n0\n5\n")
    (tmp_path / "val" / "list.txt").write_text("GOT-10k_Val_000001\n")
    (seq,) = list_sequences(tmp_path / "val", "got10k")
    assert seq.visible.tolist() == [True, False, False, True]
    t = tmp_path / "test" / "GOT-10k_Test_000001"
    _frames(t, [f"{i:08d}.jpg" for i in range(1, 4)])
    _boxes(t / "groundtruth.txt", 1)
    test_seq = read_got10k(t)
    assert test_seq.attributes["gt_init_only"] and test_seq.visible.tolist() == [True, False, False]
    (d / "absence.label").write_text("0\n0\nyes\n0\n")
    with pytest.raises(ValueError, match=r"absence.label:3: expected integer labels"):
        read_got10k(d)


def test_trackingnet_sorts_frames_numerically(tmp_path):
    chunk = tmp_path / "TRAIN_0"
    _frames(chunk / "frames" / "vid", [f"{i}.jpg" for i in range(12)])
    _boxes(chunk / "anno" / "vid.txt", 12)
    (seq,) = list_sequences(tmp_path, "trackingnet")
    assert [p.stem for p in seq.frames[:3]] + [seq.frames[-1].stem] == ["0", "1", "2", "11"]


def test_uav123_subsequence_needs_ranges(tmp_path):
    _frames(tmp_path / "data_seq" / "UAV123" / "bird1", [f"{i:06d}.jpg" for i in range(1, 7)])
    _boxes(tmp_path / "anno" / "UAV123" / "bird1_2.txt", 3, absent=(2,))
    config = tmp_path / "configSeqs.m"
    config.write_text(
        "seqUAV123={struct('name','bird1_2','path','C:\\data_seq\\UAV123\\bird1\\','startFrame',4,"
        "'endFrame',6,'nz',6,'ext','jpg','init_rect',[0,0,0,0])};\n"
    )
    with pytest.raises(ValueError, match="parse_uav_config"):
        read_uav123(tmp_path, "bird1_2")
    ranges = parse_uav_config(config)
    assert ranges == {"bird1_2": ("bird1", 4, 6)}
    (seq,) = list_sequences(tmp_path, "uav123", ranges=ranges)
    assert [p.name for p in seq.frames] == ["000004.jpg", "000005.jpg", "000006.jpg"]
    assert seq.visible.tolist() == [True, True, False]


def test_load_frame_returns_rgb(tmp_path):
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    rgb = load_frame(tmp_path / "red.png")
    assert rgb[0, 0].tolist() == [255, 0, 0]
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        load_frame(tmp_path / "missing.png")


def test_unknown_layout(tmp_path):
    with pytest.raises(ValueError, match="unknown layout 'vot'"):
        list_sequences(tmp_path, "vot")
