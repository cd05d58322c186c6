"""`make demo` in miniature: node process, synthetic held-out video, service-set target, outputs on disk."""

from __future__ import annotations

import csv
import re

from grm_ros.model import DEFAULT_CHECKPOINT
from grm_ros.ros import demo


def test_demo_plays_a_short_video_and_writes_its_outputs(tmp_path, capsys):
    assert demo.main(["--frames", "10", "--fps", "20", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "set_target: tracking target 1" in printed
    played = re.search(r"(\d+) frames played at 20 fps", printed)  # those after the first visible frame
    assert played and 1 <= int(played.group(1)) <= 9 and "mean IoU" in printed
    tracker_fps = re.search(r"the tracker itself runs at ([0-9.]+) fps", printed)  # the node's own rate
    assert tracker_fps and float(tracker_fps.group(1)) > 0
    assert DEFAULT_CHECKPOINT.is_file() and "RANDOM WEIGHTS" not in printed  # the packaged model ran
    assert (tmp_path / "montage.png").stat().st_size > 0
    with (tmp_path / "tracks.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 10
    answered = [r for r in rows[1:] if r["x"]]
    assert answered and all(float(r["latency_s"]) > 0 for r in answered)
