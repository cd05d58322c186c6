"""`grm-eval`: run trackers over a dataset with OPE, then score, tabulate and plot.

    grm-eval --trackers nanotrack,csrt --root ../shared/sot --layout uniform --out out/eval
    grm-eval --trackers grm --checkpoint w.pth --template-update on --out out/eval
    grm-eval --results-only --trackers grm_tu_on,grm_tu_off,nanotrack --out out/eval

Raw results go to <out>/results/<tracker>/<seq>.txt (+ _time.txt); the report to <out>/report.md,
<out>/report.csv and the curves to <out>/*.png. --results-only re-scores what is on disk, e.g.
published raw results copied into <out>/results/<name>/.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from grm_ros.datasets import LAYOUTS, list_sequences, shared_root
from grm_ros.evaluation.metrics import LAYOUT_PROTOCOL, PROTOCOLS, get_protocol
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
                   help=f"comma-separated: {', '.join(TRACKER_NAMES)} (default: nanotrack,csrt); with "
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


def _select(names: list[str], wanted: str | None, what: str) -> list[str]:
    if wanted is None:
        return names
    chosen = [n.strip() for n in wanted.split(",") if n.strip()]
    missing = sorted(set(chosen) - set(names))
    if missing:
        raise SystemExit(f"grm-eval: unknown {what} {missing}; available: {names}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    """grm-eval; bad input (missing model or data, malformed files) ends in one line, not a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"grm-eval: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.max_frames is not None and args.max_frames < 2:
        raise SystemExit("grm-eval: --max-frames must be >= 2 (frame 1 only initialises)")
    root = args.root if args.root is not None else shared_root() / "sot"
    protocol = get_protocol(args.protocol or LAYOUT_PROTOCOL[args.layout])
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
        trackers = _select(list(TRACKER_NAMES), args.trackers or "nanotrack,csrt", "trackers")
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
    totals = overall(scores, protocol)
    args.out.mkdir(parents=True, exist_ok=True)
    title = f"OPE on {root.name} ({args.layout}, {len(sequences)} sequences)"
    extra: list[str] = []
    if args.reference is not None:
        extra = ["", f"## Against {args.reference.name}", "",
                 *reference_section(scores, totals, read_reference(args.reference))]
    md = write_markdown(args.out / "report.md", scores, totals, protocol, args.machine, title, extra)
    write_csv(args.out / "report.csv", scores, totals)
    plot_curves(totals, args.out, root.name)
    for name, s in totals.items():
        print(f"{name:>12s} AUC {s.auc:.4f}  P@20 {s.p20:.4f}  NP@0.2 {s.np20:.4f}  mIoU {s.miou:.4f}  "
              f"{s.fps:.1f} fps ({args.machine})")
    print(f"report: {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
