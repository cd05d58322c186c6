"""The soak (``make soak``) on a few seconds: the node runs as its own process and the report is complete."""

from __future__ import annotations

import json

import pytest

from grm_ros.bench.soak import growth_per_10k, main


def test_rss_growth_is_the_slope_after_the_warm_up_window():
    # the first sample (warm-up) is left out; then 2 MiB more every 5,000 frames
    assert growth_per_10k([0, 1000, 6000, 11000], [100.0, 300.0, 302.0, 304.0]) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="at least 3 windows"):
        growth_per_10k([0, 100], [1.0, 2.0])


def test_a_short_soak_reports_memory_and_latency_per_window(tmp_path, capsys):
    out = tmp_path / "soak.json"
    assert main(["--minutes", "0.1", "--window", "1.5", "--node-param", "allow_random:=true",
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["node_exit_code"] == 0 and report["frames"] > 0
    assert report["frames_without_tracks"] == 0
    windows = report["windows"]
    assert len(windows) >= 4 and all(w["rss_mib"] > 0 for w in windows)
    assert all(0 < w["median_ms"] <= w["p90_ms"] <= w["p99_ms"] for w in windows[1:])
    assert [w["frames"] for w in windows] == sorted(w["frames"] for w in windows)
    assert isinstance(report["rss_growth_mib_per_10k_frames"], float)
    assert "MiB per 10k frames" in capsys.readouterr().out
