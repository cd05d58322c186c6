"""`grm-eval`: run trackers over a dataset with OPE, then score, tabulate and plot.

    grm-eval --trackers nanotrack,csrt --root ../shared/sot --layout uniform --out out/eval
    grm-eval --trackers grm --checkpoint w.pth --template-update on --out out/eval
    grm-eval --results-only --trackers grm_tu_on,grm_tu_off,nanotrack --out out/eval
    grm-eval --bag tracks_bag --gt ../shared/sot/Crossing/groundtruth.txt --out out/eval-bag

Raw results go to <out>/results/<tracker>/<seq>.txt (+ _time.txt); the report to <out>/report.md,
<out>/report.csv and the curves to <out>/*.png. --results-only re-scores what is on disk, e.g.
published raw results copied into <out>/results/<name>/. --bag scores the grm_ros/TrackArray topic of a
bag (as `grm-track --bag` writes it, one array per frame) against a GT file, with the same metrics.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import yaml

from grm_ros.console import check_output_dir
from grm_ros.datasets import LAYOUTS, list_sequences, read_boxes, shared_root
from grm_ros.evaluation.metrics import (
    LAYOUT_PROTOCOL,
    PROTOCOLS,
    Protocol,
    Score,
    get_protocol,
    score_sequence,
)
from grm_ros.evaluation.ope import run_ope
from grm_ros.evaluation.plots import plot_curves
from grm_ros.evaluation.report import (
    overall,
    read_reference,
    reference_section,
    score_results,
    write_csv,
    write_markdown,
)
from grm_ros.evaluation.trackers import TRACKER_NAMES, make_factory


def _key_value(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="grm-eval", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trackers", default=None,
                   help=f"comma-separated: {', '.join(TRACKER_NAMES)} (default: {DEFAULT_TRACKERS}); with "
                        "--results-only any folder under <out>/results (default: all of them)")
    p.add_argument("--root", type=Path, default=None, help="dataset root (default: $GRM_SHARED/sot)")
    p.add_argument("--layout", choices=sorted(LAYOUTS), default="uniform")
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), default=None,
                   help="scoring rules (default: the layout's benchmark protocol)")
    p.add_argument("--sequences", default=None, help="comma-separated subset of sequence names")
    p.add_argument("--max-frames", type=int, default=None, help="only the first N frames of each sequence")
    p.add_argument("--out", type=Path, default=Path("out/eval"), help="output folder")
    p.add_argument("--results-only", action="store_true", help="re-score <out>/results without tracking")
    p.add_argument("--reference", type=Path, default=None,
                   help="reference table (results_dev.tsv layout) to list side by side with the run")
    p.add_argument("--machine", default=f"{os.cpu_count()}-core CPU", help="label for the fps column")
    bag = p.add_argument_group("bags")
    bag.add_argument("--bag", type=Path, default=None, help="score the tracks of this rosbag2 against --gt")
    bag.add_argument("--gt", type=Path, default=None, help="groundtruth.txt of the bag's frames (with --bag)")
    bag.add_argument("--tracks-topic", default="/grm_tracker/tracks", help="grm_ros/TrackArray topic")
    bag.add_argument("--track-id", type=int, default=None, help="track to score (default: the first seen)")
    grm = p.add_argument_group("grm tracker")
    grm.add_argument("--checkpoint", default=None)
    grm.add_argument("--variant", default=None)
    grm.add_argument("--device", default="cpu")
    grm.add_argument("--dtype", default="fp32")
    grm.add_argument("--allow-random", action="store_true", help="random weights if no checkpoint (tests)")
    grm.add_argument("--template-update", choices=("on", "off"), default=None,
                     help="force template update; results go to grm_tu_on / grm_tu_off")
    grm.add_argument("--grm-config", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                     help="TrackerConfig override (YAML value), repeatable, e.g. benchmark=LASOT")
    return p


DEFAULT_TRACKERS = "grm,nanotrack,csrt"


def _select(names: list[str], wanted: str | None, what: str) -> list[str]:
    if wanted is None:
        return names
    chosen = [n.strip() for n in wanted.split(",") if n.strip()]
    missing = sorted(set(chosen) - set(names))
    if missing:
        raise ValueError(f"unknown {what} {missing}; available: {names}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    """grm-eval; bad input (missing model or data, malformed files) ends in one line, not a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (OSError, ValueError, RuntimeError) as err:  # OSError: a checkpoint folder, an unwritable --out
        print(f"grm-eval: error: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.max_frames is not None and args.max_frames < 2:
        raise ValueError("--max-frames must be >= 2 (frame 1 only initialises)")
    check_output_dir(args.out)
    protocol = get_protocol(args.protocol or LAYOUT_PROTOCOL[args.layout])
    if args.bag is not None:
        return _run_bag(args, protocol)
    root = args.root if args.root is not None else shared_root() / "sot"
    all_sequences = list_sequences(root, args.layout)
    by_name = {s.name: s for s in all_sequences}
    sequences = [by_name[n] for n in _select(list(by_name), args.sequences, "sequences")]
    if args.max_frames is not None:
        sequences = [s.head(args.max_frames) for s in sequences]
    results_dir = args.out / "results"

    if args.results_only:
        on_disk = sorted(p.name for p in results_dir.glob("*") if p.is_dir())
        trackers = _select(on_disk, args.trackers, "trackers")
    else:
        trackers = _select(list(TRACKER_NAMES), args.trackers or DEFAULT_TRACKERS, "trackers")
        factories = {}
        for name in trackers:
            if name == "grm":
                update = None if args.template_update is None else args.template_update == "on"
                label = "grm" if update is None else f"grm_tu_{args.template_update}"
                factories[label] = make_factory(
                    "grm", checkpoint=args.checkpoint, variant=args.variant, device=args.device,
                    dtype=args.dtype, allow_random=args.allow_random, template_update=update,
                    config=dict(args.grm_config))
            else:
                factories[name] = make_factory(name)
        run_ope(factories, sequences, results_dir)
        trackers = list(factories)

    scores = score_results(results_dir, trackers, sequences, protocol)
    title = f"OPE on {root.name} ({args.layout}, {len(sequences)} sequences)"
    return _report(args, scores, protocol, title, root.name)


def _run_bag(args: argparse.Namespace, protocol: Protocol) -> int:
    """Score one track of a bag, frame k of its TrackArray topic against GT row k."""
    from grm_ros.datasets.bags import track_boxes  # rosbags only for bags

    if args.gt is None:
        raise ValueError("--bag needs --gt (the ground truth of the bag's frames)")
    if protocol.clip_to_image:
        raise ValueError(f"protocol {protocol.name} clips boxes to the image, whose size a tracks bag does "
                         "not hold; choose another --protocol")
    gt = read_boxes(args.gt)
    track_id, boxes = track_boxes(args.bag, args.tracks_topic, args.track_id)
    if args.max_frames is not None:
        gt, boxes = gt[:args.max_frames], boxes[:args.max_frames]
    if len(boxes) != len(gt):
        raise ValueError(f"{args.bag}: {len(boxes)} track arrays on {args.tracks_topic} but {len(gt)} boxes "
                         f"in {args.gt}: score the bag against the ground truth of the same frames")
    visible = np.isfinite(gt).all(axis=1) & (gt[:, 2] > 0) & (gt[:, 3] > 0)  # as Sequence.visible
    name = args.gt.parent.name or args.bag.name
    score = score_sequence(name, boxes, gt, visible, protocol, None, None)
    return _report(args, {f"track {track_id}": [score]}, protocol, f"Tracks of bag {args.bag.name}", name)


def _report(args: argparse.Namespace, scores: dict[str, list[Score]], protocol: Protocol, title: str,
            dataset: str) -> int:
    totals = overall(scores, protocol)
    args.out.mkdir(parents=True, exist_ok=True)
    extra: list[str] = []
    if args.reference is not None:
        extra = ["", f"## Against {args.reference.name}", "",
                 *reference_section(scores, totals, read_reference(args.reference))]
    md = write_markdown(args.out / "report.md", scores, totals, protocol, args.machine, title, extra)
    write_csv(args.out / "report.csv", scores, totals)
    plot_curves(totals, args.out, dataset)
    for name, s in totals.items():
        print(f"{name:>12s} AUC {s.auc:.4f}  P@20 {s.p20:.4f}  NP@0.2 {s.np20:.4f}  mIoU {s.miou:.4f}  "
              f"{s.fps:.1f} fps ({args.machine})")
    print(f"report: {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
