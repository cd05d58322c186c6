"""The appendix ablation runner end to end on tiny settings (random small_cpu weights, a few frames):
every row gets its DEV, distractor-set, interaction and fps figures, curves and the division figure."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from grm_ros.bench import ablation
from grm_ros.bench.ablation import Row


def test_row_names_its_template_update() -> None:
    assert Row("base", None, "small_cpu").update()["enabled"] is False
    dual = Row("+ Template update (dual)", None, "small_cpu", "dual")
    assert dual.update()["enabled"] is True and dual.update()["mode"] == "dual"
    assert dual.slug == "template_update_dual"
    with pytest.raises(ValueError, match=r"row 'x'.*'off' or one of"):
        Row("x", None, "small_cpu", "sometimes")


def test_two_rows_end_to_end(shared_data, tmp_path) -> None:
    root = shared_data("sot")
    out = tmp_path / "ablation"
    code = ablation.main(["--root", str(root), "--out", str(out), "--allow-random", "--count", "1",
                          "--length", "30", "--max-frames", "6", "--frames", "3",
                          "--row", "baseline", "-", "small_cpu", "off",
                          "--row", "+ dual", "-", "small_cpu", "dual"])
    assert code == 0
    report = json.loads((out / "ablation.json").read_text())
    rows = report["rows"]
    assert [r["name"] for r in rows] == ["baseline", "+ dual"]
    for r in rows:
        for key in ("dev_auc", "distractor_set_auc", "crossings_auc", "distractor_share", "target_share",
                    "distractor_p_interact", "target_p_interact"):
            assert 0 <= r[key] <= 1, key
        assert r["fps"] > 0 and r["backend"] in ("torch", "onnxruntime")
        # the distractor set: one crossing plus the two DEV sequences with distractors
        assert [d["kind"] for d in r["distractors"]] == ["synthetic", "dev", "dev"]
    # the same weights and no update fired in 6 frames: the DEV figures agree; timings ran interleaved
    assert rows[0]["dev_auc"] == pytest.approx(rows[1]["dev_auc"])
    assert "nanotrack" in report["timing"] or np.isnan(rows[0]["fps_vs_nanotrack"])
    table = (out / "ablation.md").read_text()
    assert table.count("| baseline |") == 2 and "| + dual |" in table  # the table and the per-sequence rows
    assert "Crossing" in table and "Rows better than baseline" in table
    for part in ("dev", "distractors"):
        assert cv2.imread(str(out / part / "success.png")) is not None
    # Both rows run the same weights: one band, the montage's decision row under the row's name.
    figure = cv2.imread(str(out / "division_by_row.jpg"))
    single = cv2.imread(str(next((out / "rows" / "baseline").glob("synth_*.png"))))
    band = (single.shape[0] - ablation.DIVIDER) // 2 + ablation.LABEL
    assert figure.shape[1] == 1200 and figure.shape[0] == round(band * 1200 / single.shape[1])


def test_the_figure_shows_the_most_contested_crossing() -> None:
    def score(name: str, auc: float):
        return type("S", (), {"name": name, "auc": auc})()
    crossings = {"a": [score("v1", 0.5), score("v2", 0.2)], "b": [score("v1", 0.55), score("v2", 0.6)]}
    assert ablation.most_contested(crossings) == "v2"
    assert ablation.most_contested({}) is None


def test_a_missing_checkpoint_is_one_line(shared_data, tmp_path, capsys) -> None:
    code = ablation.main(["--root", str(shared_data("sot")), "--out", str(tmp_path),
                          "--row", "baseline", str(tmp_path / "nope.pth"), "small_cpu", "off"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ablation: error:") and "nope.pth" in err[0]
