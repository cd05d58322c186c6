"""CI smoke evaluation: the harness reproduces the reference comparator figures of
../shared/baselines/results_dev.tsv on two short dev sequences (the full run: `make eval`)."""

import csv
from collections.abc import Callable
from pathlib import Path

import pytest

from grm_ros.evaluation.cli import main

SEQUENCES = ("Crossing", "DragonBaby")


def _reference(shared_data: Callable[..., Path]) -> dict[tuple[str, str], dict[str, str]]:
    with shared_data("baselines", "results_dev.tsv").open() as fh:
        return {(r["tracker"], r["sequence"]): r for r in csv.DictReader(fh, delimiter="\t")}


def _run(tracker: str, sequences: tuple[str, ...], out: Path,
         shared_data: Callable[..., Path]) -> dict[tuple[str, str], dict[str, str]]:
    root = shared_data("sot")
    assert main(["--trackers", tracker, "--root", str(root), "--sequences", ",".join(sequences),
                 "--out", str(out)]) == 0
    with (out / "report.csv").open() as fh:
        return {(r["tracker"], r["sequence"]): r for r in csv.DictReader(fh)}


def _check(ours: dict, tracker: str, sequences: tuple[str, ...], ref: dict) -> None:
    for seq in sequences:
        got, want = ours[tracker, seq], ref[tracker, seq]
        assert int(got["frames"]) == int(want["frames"]) and int(got["scored"]) == int(want["scored"])
        assert float(got["auc"]) == pytest.approx(float(want["auc"]), abs=0.01), (tracker, seq)
        assert float(got["p20"]) == pytest.approx(float(want["p20"]), abs=0.01), (tracker, seq)
        assert int(got["failed"]) == int(want["failed"]), (tracker, seq)


def test_nanotrack_matches_the_reference_table(tmp_path, shared_data):
    ref = _reference(shared_data)
    _check(_run("nanotrack", SEQUENCES, tmp_path, shared_data), "nanotrack", SEQUENCES, ref)


def test_csrt_matches_the_reference_table(tmp_path, shared_data):
    ref = _reference(shared_data)
    _check(_run("csrt", ("Crossing",), tmp_path, shared_data), "csrt", ("Crossing",), ref)
