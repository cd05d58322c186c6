"""Scoring raw results on disk and writing the per-sequence / overall tables (Markdown, CSV)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from grm_ros.datasets import Sequence
from grm_ros.evaluation.metrics import Protocol, Score, score_sequence, summarize
from grm_ros.evaluation.ope import read_result, result_paths

COLUMNS = ("tracker", "sequence", "frames", "scored", "auc", "p20", "np20", "miou", "sr50", "sr75",
           "failed", "fps")


def score_results(
    results_dir: str | Path, trackers: Iterable[str], sequences: Iterable[Sequence], protocol: Protocol
) -> dict[str, list[Score]]:
    """Score results_dir/<tracker>/<seq>.txt for every tracker and sequence (no tracking)."""
    sequences = list(sequences)
    scores: dict[str, list[Score]] = {}
    for tracker in trackers:
        scores[tracker] = []
        for seq in sequences:
            result = read_result(results_dir, tracker, seq.name)
            if len(result.boxes) != len(seq):
                path = result_paths(results_dir, tracker, seq.name)[0]
                raise ValueError(f"{path}: {len(result.boxes)} boxes but sequence {seq.name!r} has "
                                 f"{len(seq)} frames (re-score with the same --max-frames as the run)")
            size = seq.image_size() if protocol.clip_to_image else None
            scores[tracker].append(
                score_sequence(seq.name, result.boxes, seq.gt, seq.visible, protocol, size, result.times)
            )
    return scores


def overall(scores: Mapping[str, list[Score]], protocol: Protocol) -> dict[str, Score]:
    return {tracker: summarize(rows, protocol) for tracker, rows in scores.items()}


def _cells(tracker: str, s: Score) -> list[str]:
    def f(v: float, digits: int = 4) -> str:
        return "nan" if not np.isfinite(v) else f"{v:.{digits}f}"

    return [tracker, s.name, str(s.frames), str(s.scored), f(s.auc), f(s.p20), f(s.np20), f(s.miou),
            f(s.sr50), f(s.sr75), str(s.failed), f(s.fps, 1)]


def write_csv(path: str | Path, scores: Mapping[str, list[Score]], totals: Mapping[str, Score]) -> Path:
    """One row per tracker x sequence, then one MEAN row per tracker (the tsv's layout)."""
    path = Path(path)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for tracker, rows in scores.items():
            writer.writerows(_cells(tracker, s) for s in [*rows, totals[tracker]])
    return path


def _table(header: Iterable[str], rows: Iterable[list[str]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def write_markdown(
    path: str | Path,
    scores: Mapping[str, list[Score]],
    totals: Mapping[str, Score],
    protocol: Protocol,
    machine: str,
    title: str = "OPE evaluation",
    extra: Iterable[str] = (),
) -> Path:
    """Overall table (best AUC first) then the per-sequence rows grouped by sequence."""
    path = Path(path)
    header = ["tracker", "sequence", "frames", "scored", "AUC", "P@20", "NP@0.2", "mIoU/AO", "SR0.5",
              "SR0.75", "failed", f"fps ({machine})"]
    ranked = sorted(totals, key=lambda t: -np.nan_to_num(totals[t].auc, nan=-1.0))
    lines = [
        f"# {title}",
        "",
        f"Protocol `{protocol.name}`: first frame {protocol.first_frame}, failed updates {protocol.failed}, "
        f"absent frames {protocol.absent}, overall = {protocol.overall} mean. AUC = mean success over IoU "
        "thresholds 0:0.05:1 (IoU > t); P@20 = centre error <= 20 px; "
        "NP@0.2 = centre error / GT size <= 0.2.",
        f"Timing: updates per second of wall time on {machine}, image loading excluded.",
        "",
        "## Overall",
        "",
        *_table(header, (_cells(t, totals[t]) for t in ranked)),
        "",
        "## Per sequence",
        "",
    ]
    names = [s.name for s in next(iter(scores.values()))]
    per_seq = [_cells(t, scores[t][i]) for i in range(len(names)) for t in ranked]
    lines += _table(header, per_seq)
    lines += list(extra)
    path.write_text("\n".join(lines) + "\n")
    return path


def read_reference(path: str | Path) -> dict[tuple[str, str], dict[str, str]]:
    """A reference table in the results_dev.tsv layout (tab-separated, tracker/sequence/auc/p20...)."""
    path = Path(path)
    with path.open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    missing = {"tracker", "sequence", "auc", "p20"} - set(rows[0] if rows else {})
    if missing:
        raise ValueError(f"{path}: reference table lacks column(s) {sorted(missing)}")
    return {(r["tracker"], r["sequence"]): r for r in rows}


def reference_section(
    scores: Mapping[str, list[Score]], totals: Mapping[str, Score], reference: Mapping[tuple[str, str], dict],
    tolerance: float = 0.01,
) -> list[str]:
    """Markdown rows of our AUC / P@20 next to a reference table's, with the differences; rows whose
    |dAUC| exceeds the tolerance are marked. The MEAN rows are compared only when the run covers
    exactly the reference's sequences."""
    header = ["tracker", "sequence", "AUC", "ref AUC", "dAUC", "P@20", "ref P@20", "dP@20", "failed",
              "ref failed"]
    rows = []
    for tracker, seq_scores in scores.items():
        ref_keys = [k for k in reference if k[0] == tracker]
        means = [k for k in ref_keys if k[1].startswith("MEAN")]
        pairs = [(s, reference.get((tracker, s.name))) for s in seq_scores]
        if means and {s.name for s in seq_scores} == {k[1] for k in ref_keys} - {means[0][1]}:
            pairs.append((totals[tracker], reference[means[0]]))
        for s, ref in pairs:
            if ref is None:
                continue
            d_auc, d_p20 = s.auc - float(ref["auc"]), s.p20 - float(ref["p20"])
            flag = " **(> tol)**" if abs(d_auc) > tolerance else ""
            rows.append([tracker, s.name, f"{s.auc:.4f}", ref["auc"], f"{d_auc:+.4f}{flag}", f"{s.p20:.4f}",
                         ref["p20"], f"{d_p20:+.4f}", str(s.failed), ref.get("failed", "")])
    return _table(header, rows)
