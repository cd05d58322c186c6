"""The appendix ablation at equal budget: each row's DEV AUC, distractor-set AUC, interaction on the
distractor's tokens and fps, in one run, so rows are compared on the same data and the same machine load.

    python -m grm_ros.bench.ablation --root ../shared/sot --out out/ablation \\
        --row baseline RUN/base.pth nanostem_256 off --row "+ C.1" RUN/c1.pth nanostem_256 off \\
        --row "+ template update (dual)" RUN/base.pth nanostem_256 dual

A row is a name, a checkpoint, its variant and the template update (off, replace, dual). ``make
ablation-appendix`` trains the rows' checkpoints with one recipe budget and runs this. Per row:

* DEV: one-pass evaluation of every sequence under ``--root`` with the harness's tracker (``grm-eval``);
* distractor set: the crossings of ``grm_ros.evaluation.distractors`` plus its DEV sequences with
  distractors; the interaction share is the search tokens on the distractor (resp. the target) that the
  division lets interact, pooled over dividing blocks and crossing frames;
* fps: ``Tracker.update`` at 640x480, one target, every row and NanoTrack v2 interleaved frame by frame;
  a row with template update is timed after a refresh (dual: two templates per forward).

Writes ``ablation.json``, ``ablation.md`` (the table, then DEV AUC per sequence), success curves of the
DEV and distractor sets (``dev/``, ``distractors/``), each row's division figures (``rows/<slug>/``) and
``division_by_row.jpg``: every model's division at the crossing where the rows' AUC differ most.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from grm_ros.bench.tracker_bench import time_trackers
from grm_ros.datasets import list_sequences, shared_root
from grm_ros.evaluation.distractors import (
    DEV_SEQUENCES,
    SYNTH_PARAMS,
    dev_sequences,
    distractor_set,
    interaction_shares,
    run_set,
    tracker_factory,
)
from grm_ros.evaluation.metrics import PROTOCOLS, Score, summarize
from grm_ros.evaluation.ope import run_ope
from grm_ros.evaluation.plots import plot_curves
from grm_ros.evaluation.report import score_results
from grm_ros.evaluation.trackers import grm_factory
from grm_ros.model.engine import EngineConfig
from grm_ros.tracking.template_update import TEMPLATE_SWITCHES, TemplateUpdateConfig
from grm_ros.tracking.tracker import build_tracker

DIVIDER, LABEL = 4, 36  # px: white line between a montage's two rows; a row's name band


@dataclass(frozen=True)
class Row:
    """One ablation setting: weights, the variant they were trained as, and the template update."""

    name: str
    checkpoint: str | None  # None: the variant's packaged weights
    variant: str
    template_update: str = "off"

    def __post_init__(self) -> None:
        try:
            self.update()
        except ValueError as err:
            raise ValueError(f"row {self.name!r}: {err}") from None

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_") or "row"

    def update(self) -> dict:
        """The template update as ``TrackerConfig`` fields (a mapping, which ``grm_factory`` also takes)."""
        return asdict(TemplateUpdateConfig.switch(self.template_update))


def evaluate_dev(rows: list[Row], root: Path, out: Path, max_frames: int = 0, allow_random: bool = False
                 ) -> dict[str, list[Score]]:
    """One-pass DEV runs of every row (raw results under ``out/results/<slug>``), scored; ``max_frames``
    keeps the first frames of each sequence (0: all)."""
    sequences = [seq.head(min(max_frames, len(seq))) if max_frames else seq
                 for seq in list_sequences(root, "uniform")]
    factories = {row.slug: grm_factory(row.checkpoint, row.variant, allow_random=allow_random,
                                       config={"template_update": row.update()}) for row in rows}
    run_ope(factories, sequences, out / "results")
    return score_results(out / "results", list(factories), sequences, PROTOCOLS["dev"])


def evaluate_distractors(row: Row, synthetic: list, dev: list, out: Path, allow_random: bool = False
                         ) -> tuple[list[dict], list[Score]]:
    """The distractor benchmark of one row over the set every row shares (``distractors.run_set``)."""
    new_tracker = tracker_factory(row.checkpoint, row.variant, row.template_update, 1, allow_random)
    return run_set(new_tracker, synthetic, dev, out / "rows" / row.slug)


# For timing only: a template update refreshes on the first frame and keeps that template, so the timed
# frames pay what a refreshed track costs (dual: both templates in every forward); every row keeps its
# target TRACKING (thresholds 0), as the timing frames are noise that would lose it, and a LOST dual
# target drops its second template.
REFRESH_AT_ONCE = {"min_confidence": 0.0, "min_iou": 0.0, "stable_frames": 1, "interval": 1,
                   "probation": 1000}


def time_rows(rows: list[Row], frames: int, allow_random: bool = False) -> dict[str, dict]:
    """fps at 640x480 with one target, every row on the node's default engine (backend auto, 1 thread)."""
    trackers = {}
    for row in rows:
        update = row.update()
        if update["enabled"]:
            update.update(REFRESH_AT_ONCE)
        trackers[row.slug] = build_tracker(row.checkpoint, row.variant, EngineConfig(threads=1),
                                           allow_random=allow_random, template_update=update,
                                           lost_threshold=0.0, recover_threshold=0.0)
    return time_trackers(trackers, frames=frames)


def division_by_row(rows: list[Row], out: Path, sequence: str, width: int = 1200) -> Path | None:
    """One band per distinct model (checkpoint and variant: a template update leaves the division as it
    is), its name above its division decisions on ``sequence`` (the same crossing frame for every row),
    scaled to ``width`` px: ``division_by_row.jpg``."""
    bands, seen = [], set()
    for row in rows:
        image = cv2.imread(str(out / "rows" / row.slug / f"{sequence}.png"))
        if image is None or (row.checkpoint, row.variant) in seen:
            continue
        seen.add((row.checkpoint, row.variant))
        image = image[:(image.shape[0] - DIVIDER) // 2]  # the decisions; below them the p(interact) maps
        label = np.full((LABEL, image.shape[1], 3), 255, np.uint8)
        cv2.putText(label, row.name, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2, cv2.LINE_AA)
        bands += [label, image]
    if not bands:
        return None
    stacked = np.vstack(bands)
    scale = width / stacked.shape[1]
    path = out / "division_by_row.jpg"
    cv2.imwrite(str(path), cv2.resize(stacked, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA),
                [cv2.IMWRITE_JPEG_QUALITY, 85])
    return path


def most_contested(crossings: dict[str, list[Score]]) -> str | None:
    """The crossing whose AUC differs most between rows: where the figure shows what the rows change."""
    names = [s.name for s in next(iter(crossings.values()), [])]
    if not names:
        return None
    aucs = np.array([[s.auc for s in scores] for scores in crossings.values()])
    return names[int(np.argmax(aucs.max(axis=0) - aucs.min(axis=0)))]


def markdown(table: list[dict], dev: dict[str, list[Score]], rows: list[Row], baseline: str) -> str:
    lines = ["| variant | DEV AUC | distractor-set AUC | crossings AUC | interaction on distractor tokens "
             "(mean p) | on target tokens (mean p) | fps | fps / NanoTrack |", "|---" * 8 + "|"]

    def tokens(r: dict, mask: str) -> str:
        return f"{100 * r[f'{mask}_share']:.1f}% ({r[f'{mask}_p_interact']:.2f})"

    for r in table:
        lines.append(f"| {r['name']} | {r['dev_auc']:.3f} | {r['distractor_set_auc']:.3f} | "
                     f"{r['crossings_auc']:.3f} | {tokens(r, 'distractor')} | {tokens(r, 'target')} | "
                     f"{r['fps']:.1f} | {r['fps_vs_nanotrack']:.2f} |")
    better = [r["name"] for r in table[1:] if r["dev_auc"] > table[0]["dev_auc"]
              and r["distractor_set_auc"] > table[0]["distractor_set_auc"]]
    lines += ["", f"Rows better than {table[0]['name']} on both DEV and the distractor set: "
              + (", ".join(better) if better else "none") + ".", "",
              f"NanoTrack v2 in the same timing run: {baseline}.", "", "DEV AUC per sequence:", ""]
    names = [s.name for s in dev[rows[0].slug]]
    lines += ["| variant | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for row in rows:
        lines.append(f"| {row.name} | " + " | ".join(f"{s.auc:.3f}" for s in dev[row.slug]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grm_ros.bench.ablation",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--row", nargs=4, action="append", required=True,
                        metavar=("NAME", "CHECKPOINT", "VARIANT", "UPDATE"),
                        help=f"a setting, the first one the baseline; CHECKPOINT - for the variant's "
                             f"packaged weights; UPDATE one of {TEMPLATE_SWITCHES}")
    parser.add_argument("--root", type=Path, default=None, help="DEV root (default: <shared>/sot)")
    parser.add_argument("--count", type=int, default=12, help="synthetic crossings of the distractor set")
    parser.add_argument("--length", type=int, default=SYNTH_PARAMS.length, help="frames per crossing video")
    parser.add_argument("--max-frames", type=int, default=0, help="frames per DEV sequence (0: all)")
    parser.add_argument("--frames", type=int, default=60, help="timed frames per row")
    parser.add_argument("--allow-random", action="store_true", help="random weights if no checkpoint (tests)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    args = parser.parse_args(argv)
    try:
        rows = [Row(name, None if checkpoint == "-" else checkpoint, variant, update)
                for name, checkpoint, variant, update in args.row]
    except ValueError as err:
        parser.error(str(err))
    if len({row.slug for row in rows}) != len(rows):
        parser.error("row names must differ (after lower-casing and dropping punctuation)")
    try:
        return _run(rows, args)
    except (OSError, ValueError) as err:  # a missing checkpoint or sequence, a variant that does not fit
        print(f"ablation: error: {err}", file=sys.stderr)
        return 2


def _run(rows: list[Row], args: argparse.Namespace) -> int:
    root = args.root or shared_root() / "sot"
    protocol = PROTOCOLS["dev"]
    dev = evaluate_dev(rows, root, args.out, args.max_frames, args.allow_random)
    dev_totals = {row.name: summarize(dev[row.slug], protocol) for row in rows}
    synthetic = distractor_set(args.count, params=replace(SYNTH_PARAMS, length=args.length))
    dev_distractors = dev_sequences(root, list(DEV_SEQUENCES), args.max_frames)
    crossings, table, sets = {}, [], {}
    for row in rows:
        results, scores = evaluate_distractors(row, synthetic, dev_distractors, args.out, args.allow_random)
        sets[row.name] = summarize(scores, protocol)
        crossings[row.slug] = [s for s, r in zip(scores, results, strict=True) if r["kind"] == "synthetic"]
        shares = interaction_shares(results)
        table.append({"name": row.name, **asdict(row), "dev_auc": dev_totals[row.name].auc,
                      "distractor_set_auc": sets[row.name].auc,
                      "crossings_auc": float(np.mean([s.auc for s in crossings[row.slug]])),
                      **{f"{mask}_{k}": shares.get(mask, {}).get(k, float("nan"))
                         for mask in ("distractor", "target") for k in ("share", "p_interact")},
                      "distractors": results})
    timing = time_rows(rows, args.frames, args.allow_random)
    base = timing.get("nanotrack")
    for row, r in zip(rows, table, strict=True):
        r["fps"] = timing[row.slug]["fps"]
        r["backend"] = timing[row.slug]["backend"]
        r["fps_vs_nanotrack"] = r["fps"] / base["fps"] if base else float("nan")

    args.out.mkdir(parents=True, exist_ok=True)
    plot_curves(dev_totals, args.out / "dev", "DEV")
    plot_curves(sets, args.out / "distractors", "the distractor set")
    contested = most_contested(crossings)
    if contested:
        division_by_row(rows, args.out, contested)
    baseline = f"{base['fps']:.1f} fps (median {base['median_ms']:.1f} ms)" if base else "not found"
    text = markdown(table, dev, rows, baseline)
    (args.out / "ablation.md").write_text(text + "\n")
    (args.out / "ablation.json").write_text(json.dumps({"rows": table, "timing": timing}, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
