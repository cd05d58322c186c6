"""The benchmark code on tiny settings: figures are produced and well-formed (speed is not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from op_names import OpNames
from torch import nn

from grm_ros.bench.cli import main
from grm_ros.bench.model_bench import available_backends, bench_model, dense_floor
from grm_ros.bench.node_bench import bench_node
from grm_ros.bench.stats import interleaved, summarize, with_ratios
from grm_ros.bench.tracker_bench import bench_tracker, moving_frames, start_boxes


def test_summarize_percentiles() -> None:
    stats = summarize([i / 1000 for i in range(1, 101)])
    assert stats["n"] == 100 and stats["median_ms"] == pytest.approx(50.5)
    assert stats["p90_ms"] == pytest.approx(90.1) and stats["p99_ms"] == pytest.approx(99.01)
    with pytest.raises(ValueError, match="no timings"):
        summarize([])


def test_interleaved_calls_in_turn_and_ratios() -> None:
    calls: list[str] = []
    times = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, runs=3, warmup=1)
    assert calls == ["a", "b"] * 4 and all(len(t) == 3 for t in times.values())
    ratios = with_ratios({"base": [0.02, 0.02], "fast": [0.01, 0.01]}, "base")
    assert ratios["fast"]["speedup_vs_base"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="baseline"):
        with_ratios(times, "c")


def test_model_bench_reports_every_backend_and_its_parity() -> None:
    result = bench_model("small_cpu", runs=1, warmup=0, threads=1)
    backends = set(available_backends("cpu"))
    assert "torch" in backends and "compiled" not in backends  # compiled only when asked: minutes
    assert set(result["paths"]) == {"reference", "dense_floor"} | backends
    assert result["paths"]["reference"]["speedup_vs_reference"] == 1.0
    assert set(result["max_abs_diff"]) == backends and max(result["max_abs_diff"].values()) < 1e-4


def test_dense_floor_replays_only_the_dense_products() -> None:
    def forward() -> None:
        x = torch.ones(1, 3, 8, 8)
        y = nn.functional.conv2d(x, torch.ones(4, 3, 3, 3))
        z = nn.functional.linear(y.flatten(2).transpose(1, 2).relu(), torch.ones(5, 4))
        z.softmax(-1)

    replay = dense_floor(forward)
    with torch.inference_mode(), OpNames() as ops:
        forward()
    assert {"relu", "softmax", "conv2d", "linear"} <= set(ops.names)
    with OpNames() as ops:
        replay()
    assert ops.names == ["conv2d", "linear"]
    with pytest.raises(ValueError, match="no linear or conv2d"):
        dense_floor(lambda: torch.ones(3).relu())


def test_synthetic_video_moves_and_boxes_fit() -> None:
    frames = moving_frames(64, 48, 3)
    assert frames[0].shape == (48, 64, 3) and not (frames[0] == frames[1]).all()
    for x, y, w, h in start_boxes(640, 480, 4):
        assert x >= 0 and x + w <= 640 and y >= 0 and y + h <= 480


def test_tracker_bench_times_each_geometry() -> None:
    result = bench_tracker(resolution="640x480", targets=2, frames=2, warmup=0, threads=1)
    assert set(result["geometries"]) == {"reference", "device"}
    assert all(s["n"] == 2 and s["fps"] > 0 for s in result["geometries"].values())
    assert {s["backend"] for s in result["geometries"].values()} <= set(available_backends("cpu"))
    with pytest.raises(ValueError, match="resolution"):
        bench_tracker(resolution="10x10")


def test_node_bench_measures_stamp_to_tracks() -> None:
    result = bench_node(resolution="640x480", frames=2, warmup=1)
    assert result["latency"]["n"] == 2 and result["latency"]["median_ms"] > 0


def test_cli_writes_json(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    argv = ["--variants", "small_cpu", "--runs", "1", "--skip", "tracker", "node", "--out", str(out)]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["model"][0]["variant"] == "small_cpu" and "load_avg" in report["machine"]
    assert "vs reference" in capsys.readouterr().out
