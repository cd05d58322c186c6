"""OPE runner, raw-result files and the grm-eval command on a synthetic dataset."""

import csv

import cv2
import numpy as np
import pytest

from grm_ros.datasets import list_sequences
from grm_ros.evaluation.cli import DEFAULT_TRACKERS, main
from grm_ros.evaluation.ope import read_result, run_ope, run_sequence
from grm_ros.evaluation.trackers import TRACKER_NAMES


class ShiftTracker:
    """Reports the initial box moved right by `step` px per frame; fails on frame 3."""

    def __init__(self, step: float = 2.0) -> None:
        self.step = step

    def initialize(self, frame_rgb, box_xywh):
        assert frame_rgb.ndim == 3 and frame_rgb.dtype == np.uint8
        self.box, self.n = list(box_xywh), 0

    def track(self, frame_rgb):
        self.n += 1
        if self.n == 2:
            return None
        self.box[0] += self.step
        return tuple(self.box)


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "data"
    for name, n in (("a", 5), ("b", 4)):
        (root / name / "img").mkdir(parents=True)
        for i in range(1, n + 1):
            cv2.imwrite(str(root / name / "img" / f"{i:05d}.jpg"), np.full((48, 64, 3), 90, np.uint8))
        (root / name / "groundtruth.txt").write_text("\n".join(["10,10,20,20"] * n) + "\n")
    return root


def test_run_sequence_records_boxes_failures_and_times(dataset):
    seq = list_sequences(dataset)[0]
    result = run_sequence(ShiftTracker(), seq)
    assert result.boxes[0].tolist() == [10, 10, 20, 20]
    assert result.boxes[1].tolist() == [12, 10, 20, 20]
    assert np.isnan(result.boxes[2]).all()
    assert result.failed == 1
    assert (result.times >= 0).all() and result.times.shape == (5,)


def test_results_round_trip_and_rescore(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    run_ope({"shift": ShiftTracker}, list_sequences(dataset), out / "results", log=lambda _: None)
    back = read_result(out / "results", "shift", "a")
    assert np.isnan(back.boxes[2]).all() and back.boxes[3].tolist() == [14, 10, 20, 20]
    # A "published" perfect tracker dropped next to it, then re-scored without tracking.
    (out / "results" / "perfect").mkdir()
    for name, n in (("a", 5), ("b", 4)):
        (out / "results" / "perfect" / f"{name}.txt").write_text("10\t10\t20\t20\n" * n)
    assert main(["--results-only", "--root", str(dataset), "--out", str(out), "--machine", "test box"]) == 0
    rows = {(r["tracker"], r["sequence"]): r for r in csv.DictReader((out / "report.csv").open())}
    assert float(rows["perfect", "MEAN(2)"]["auc"]) == pytest.approx(20 / 21, abs=1e-4)
    # shift on "a": offsets 0, 2, failed, 4, 6 px on a 20 px box -> IoU 1, 18/22, 0, 16/24, 14/26.
    expected = np.mean([1, 18 / 22, 0, 16 / 24, 14 / 26])
    assert float(rows["shift", "a"]["miou"]) == pytest.approx(expected, abs=1e-4)
    assert rows["shift", "a"]["failed"] == "1"
    assert rows["perfect", "a"]["fps"] == "nan"  # no time file for published results
    report = (out / "report.md").read_text()
    assert "fps (test box)" in report and "| perfect | MEAN(2) |" in report
    for png in ("success.png", "precision.png", "norm_precision.png"):
        assert (out / png).stat().st_size > 5000
    assert "perfect AUC 0.9524" in capsys.readouterr().out


def test_bad_input_is_one_error_line_and_exit_2_before_any_work(dataset, tmp_path, capsys):
    """Unknown names, a bad root and an --out that is a file all end the same way: rc 2, `error:`."""
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    cases = [(["--trackers", "kcf"], "unknown trackers ['kcf']"),
             (["--sequences", "zz"], "unknown sequences ['zz']"),
             (["--root", str(tmp_path / "nowhere")], str(tmp_path / "nowhere")),
             (["--out", str(not_a_folder)], f"--out {not_a_folder} is a file"),
             (["--trackers", "grm", "--checkpoint", str(tmp_path)], f"checkpoint {tmp_path} is a folder")]
    for extra, reason in cases:
        argv = ["--root", str(dataset), "--out", str(tmp_path / "out"), *extra]
        assert main(argv) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("grm-eval: error: ") and reason in err and err.count("\n") == 1, err
    assert not (tmp_path / "out" / "results").exists()  # nothing was tracked


def test_grm_is_among_the_default_trackers():
    assert DEFAULT_TRACKERS.split(",")[0] == "grm"
    assert set(DEFAULT_TRACKERS.split(",")) <= set(TRACKER_NAMES)


def test_rescoring_a_truncated_run_needs_the_same_length(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    run_ope({"shift": ShiftTracker}, [s.head(3) for s in list_sequences(dataset)], out / "results",
            log=lambda _: None)
    assert main(["--results-only", "--root", str(dataset), "--out", str(out)]) == 2
    assert "3 boxes but sequence 'a' has 5 frames" in capsys.readouterr().err
    assert main(["--results-only", "--root", str(dataset), "--out", str(out), "--max-frames", "3"]) == 0


def test_reference_table_side_by_side(dataset, tmp_path):
    out = tmp_path / "out"
    (out / "results" / "perfect").mkdir(parents=True)
    for name, n in (("a", 5), ("b", 4)):
        (out / "results" / "perfect" / f"{name}.txt").write_text("10,10,20,20\n" * n)
    ref = tmp_path / "ref.tsv"
    ref.write_text("tracker\tset\tsequence\tauc\tp20\tfailed\n"
                   "perfect\tX\ta\t0.9400\t1.0\t0\nperfect\tX\tb\t0.9000\t1.0\t0\n"
                   "perfect\tX\tMEAN(2)\t0.9200\t1.0\t0\n")
    main(["--results-only", "--root", str(dataset), "--out", str(out), "--reference", str(ref)])
    report = (out / "report.md").read_text()
    assert "| perfect | a | 0.9524 | 0.9400 | +0.0124 **(> tol)** |" in report
    assert "| perfect | b | 0.9524 | 0.9000 | +0.0524 **(> tol)** |" in report
    assert "| perfect | MEAN(2) | 0.9524 | 0.9200 | +0.0324 **(> tol)** |" in report
