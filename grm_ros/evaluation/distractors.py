"""Distractor benchmark (the GRM appendix's failure case A): does the token division let a look-alike in?

``python -m grm_ros.evaluation.distractors [--checkpoint F] [--variant V] [--template-update MODE] --out DIR``

When a look-alike distractor partly occludes the target, the paper shows its search tokens selected to
interact with the template and the box drifting to it. This runs the tracker (the node's default settings)
over two kinds of sequence and counts, per dividing block, how many search tokens the division selects:

* synthetic: held-out videos (``datasets.synthetic``) in which a recoloured copy or sibling of the target
  crosses in front of it, partly hiding it, with no other distractor or occluder. The distractor's box is
  known per frame, so on the crossing frames (its box overlaps the target's) the report gives the
  interacting tokens on the distractor and on the target (cell centre inside that box and not inside the
  other's: the shared part is ambiguous and counted for neither), their mean token count and the share;
  and the frames, from the first crossing on, where the box overlaps the distractor more than the target.
* DEV sequences with distractors (Jogging1, group2_2 under ``<shared>/sot``): there is no distractor ground
  truth, so the report gives the interacting tokens inside and outside the target's box on every visible
  frame instead (outside counts background as well as distractors).

Writes ``DIR/distractors.json``, ``DIR/distractors.md`` and per sequence ``DIR/figures/<name>.png``: the
division of every dividing block over the search region when the distractor hides about half of the
target (the crossing frame whose visible fraction is nearest 0.5; synthetic) or at the
frame with the most interacting tokens outside the target (DEV).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from grm_ros.boxes import iou
from grm_ros.datasets import Sequence, list_sequences, load_frame, shared_root
from grm_ros.datasets.synthetic import Distractor, SyntheticVideo, SynthParams
from grm_ros.evaluation.metrics import PROTOCOLS, Score, score_sequence
from grm_ros.model import DEFAULT_VARIANT
from grm_ros.model.engine import EngineConfig
from grm_ros.tools.division_maps import (
    DISTRACTOR_COLOR,
    PREDICTION_COLOR,
    TARGET_COLOR,
    DivisionProbe,
    LayerDivision,
    SearchRegion,
    crossing_montage,
    write_rgb,
)
from grm_ros.tracking.state import TrackState
from grm_ros.tracking.template_update import TEMPLATE_SWITCHES, TemplateUpdateConfig
from grm_ros.tracking.tracker import Tracker, build_tracker

# Every video has a crossing look-alike and nothing else that hides or mimics the target.
SYNTH_PARAMS = SynthParams(p_crossing_distractor=1.0, max_wandering_distractors=0, p_occluder=0.0)
MIN_CROSSING_FRAMES = 3
MAX_VISIBLE_AT_CROSSING = 0.9  # the distractor must hide at least a tenth of the target at some point
DEV_SEQUENCES = ("Jogging1", "group2_2")


def crossing_frames(gt: np.ndarray, distractor: np.ndarray) -> np.ndarray:
    """(N,) bool: frames after the first where the target is visible and the distractor's box overlaps it."""
    crossing = iou(gt, distractor) > 0
    crossing[0] = False
    return crossing


def distractor_set(count: int, seed: int = 0, split: str = "heldout", params: SynthParams = SYNTH_PARAMS,
                   max_tries: int = 200) -> list[tuple[SyntheticVideo, Distractor]]:
    """The first ``count`` videos by index whose crossing distractor passes in front of the visible target
    for at least ``MIN_CROSSING_FRAMES`` frames and hides part of it; frame 1 must show the target."""
    chosen: list[tuple[SyntheticVideo, Distractor]] = []
    for index in range(max_tries):
        if len(chosen) == count:
            break
        video = SyntheticVideo(index, seed, split, params)
        crossing = next((d for d in video.distractors() if d.role == "crossing"), None)
        if crossing is None:
            continue
        frames = crossing_frames(video.gt, crossing.boxes)
        if (crossing.in_front and video.visible[0] and frames.sum() >= MIN_CROSSING_FRAMES
                and video.visible_fraction[frames].min() <= MAX_VISIBLE_AT_CROSSING):
            chosen.append((video, crossing))
    if len(chosen) == count:
        return chosen
    raise ValueError(f"only {len(chosen)} of the first {max_tries} {split} videos (seed {seed}) have a "
                     f"crossing distractor in front of the target; asked for {count}")


@dataclass
class Run:
    """One tracked sequence: boxes (N, 4; row 0 the initial box, NaN after a STOPPED target), and per
    frame after the first its search region and block -> division (frame 0: None, {})."""

    boxes: np.ndarray
    regions: list[SearchRegion | None]
    maps: list[dict[int, LayerDivision]]


def track(tracker: Tracker, frames: Iterable[np.ndarray], init_box: np.ndarray) -> Run:
    """Run ``tracker`` over RGB ``frames`` from ``init_box``, recording each update's division."""
    probe = DivisionProbe(tracker)
    frames = iter(frames)
    boxes, regions, maps = [np.asarray(init_box, float)], [None], [{}]
    with probe.attached():
        target = tracker.start(next(frames), init_box)
        for frame in frames:
            results, divisions = probe.update(frame)
            ok = bool(results) and results[0].state is not TrackState.STOPPED
            boxes.append(np.asarray(results[0].box) if ok else np.full(4, np.nan))
            region, layers = divisions.get(target, (None, {}))
            regions.append(region)
            maps.append(layers)
    return Run(np.stack(boxes), regions, maps)


@dataclass
class TokenCount:
    """Interacting tokens inside one mask and their p(interact), summed over frames; the lowest and highest
    p say how near the threshold any token came."""

    interacting: float = 0.0
    tokens: float = 0.0
    probability: float = 0.0
    p_low: float = float("inf")
    p_high: float = float("-inf")
    frames: int = 0

    def add(self, layer: LayerDivision, mask: np.ndarray) -> None:
        p = layer.probability[mask]
        self.interacting += float(layer.interacting[mask].sum())
        self.tokens += float(mask.sum())
        self.probability += float(p.sum())
        if p.size:
            self.p_low, self.p_high = min(self.p_low, float(p.min())), max(self.p_high, float(p.max()))
        self.frames += 1

    def to_dict(self) -> dict[str, float]:
        frames, tokens = max(self.frames, 1), self.tokens or float("nan")
        return {"interacting": self.interacting / frames, "tokens": self.tokens / frames,
                "share": self.interacting / tokens, "p_interact": self.probability / tokens,
                "p_min": self.p_low if self.tokens else float("nan"),
                "p_max": self.p_high if self.tokens else float("nan"), "frames": self.frames}


MaskFn = Callable[[int, SearchRegion, int], np.ndarray]


def token_counts(run: Run, frames: Iterable[int], masks: dict[str, MaskFn]) -> dict[int, dict[str, dict]]:
    """Per block and per named mask (frame index, region, grid -> (F, F) bool) over ``frames``: mean
    interacting tokens inside the mask, mean tokens in it, the pooled share and mean p(interact)."""
    counts: dict[int, dict[str, TokenCount]] = {}
    for k in frames:
        region = run.regions[k]
        if region is None:
            continue
        for block, layer in run.maps[k].items():
            for name, mask_fn in masks.items():
                mask = mask_fn(k, region, layer.decision.shape[0])
                counts.setdefault(block, {}).setdefault(name, TokenCount()).add(layer, mask)
    return {block: {name: c.to_dict() for name, c in by_mask.items()}
            for block, by_mask in sorted(counts.items())}


def synthetic_masks(gt: np.ndarray, distractor: np.ndarray) -> dict[str, MaskFn]:
    """Tokens on the distractor and on the target, each excluding the other's box."""
    def on(own: np.ndarray, other: np.ndarray) -> MaskFn:
        return lambda k, region, grid: region.tokens_in(own[k], grid) & ~region.tokens_in(other[k], grid)
    return {"distractor": on(distractor, gt), "target": on(gt, distractor)}


def dev_masks(gt: np.ndarray) -> dict[str, MaskFn]:
    """Tokens inside and outside the target's box."""
    return {"inside": lambda k, region, grid: region.tokens_in(gt[k], grid),
            "outside": lambda k, region, grid: ~region.tokens_in(gt[k], grid)}


def on_distractor_frames(boxes: np.ndarray, gt: np.ndarray, distractor: np.ndarray,
                         crossing: np.ndarray) -> int:
    """Frames from the first crossing on where the box overlaps the distractor more than the target."""
    if not crossing.any():
        return 0
    after = np.arange(len(boxes)) >= np.flatnonzero(crossing)[0]
    return int((after & (iou(boxes, distractor) > iou(boxes, gt))).sum())


def score(name: str, run: Run, gt: np.ndarray, visible: np.ndarray) -> Score:
    return score_sequence(name, run.boxes, gt, visible, PROTOCOLS["dev"])


def evaluate_synthetic(video: SyntheticVideo, crossing: Distractor, tracker: Tracker,
                       figures: Path) -> tuple[dict, Score]:
    run = track(tracker, (video.frame(k) for k in range(len(video))), video.gt[0])
    frames = crossing_frames(video.gt, crossing.boxes)
    half = int(np.flatnonzero(frames)[np.argmin(np.abs(video.visible_fraction[frames] - 0.5))])
    boxes = [(video.gt[half], TARGET_COLOR), (crossing.boxes[half], DISTRACTOR_COLOR),
             (run.boxes[half], PREDICTION_COLOR)]
    _figure(figures / f"{video.name}.png", video.frame(half), run, half, boxes, video.name)
    result = score(video.name, run, video.gt, video.visible)
    return {"name": video.name, "kind": "synthetic", "frames": len(video),
            "crossing_frames": int(frames.sum()), "auc": result.auc,
            "on_distractor_frames": on_distractor_frames(run.boxes, video.gt, crossing.boxes, frames),
            "figure_frame": half + 1,
            "blocks": token_counts(run, np.flatnonzero(frames), synthetic_masks(video.gt, crossing.boxes))
            }, result


def evaluate_dev(seq: Sequence, tracker: Tracker, figures: Path) -> tuple[dict, Score]:
    run = track(tracker, (load_frame(path) for path in seq.frames), seq.gt[0])
    visible = seq.visible.copy()
    visible[0] = False
    frames = np.flatnonzero(visible)
    outside = dev_masks(seq.gt)["outside"]
    spread = [sum(int(layer.interacting[outside(k, run.regions[k], layer.decision.shape[0])].sum())
                  for layer in run.maps[k].values()) if run.regions[k] else -1 for k in frames]
    worst = int(frames[int(np.argmax(spread))])
    boxes = [(seq.gt[worst], TARGET_COLOR), (run.boxes[worst], PREDICTION_COLOR)]
    _figure(figures / f"{seq.name}.png", load_frame(seq.frames[worst]), run, worst, boxes, seq.name)
    result = score(seq.name, run, seq.gt, seq.visible)
    return {"name": seq.name, "kind": "dev", "frames": len(seq), "scored_frames": len(frames),
            "auc": result.auc, "figure_frame": worst + 1,
            "blocks": token_counts(run, frames, dev_masks(seq.gt))}, result


def _figure(path: Path, frame: np.ndarray, run: Run, k: int, boxes: list, name: str) -> None:
    if run.regions[k] is not None:
        write_rgb(path, crossing_montage(frame, run.regions[k], run.maps[k], boxes, f"{name} frame {k + 1}"))


def dev_sequences(root: Path, names: list[str], max_frames: int) -> list[Sequence]:
    by_name = {s.name: s for s in list_sequences(root, "uniform")}
    missing = sorted(set(names) - set(by_name))
    if missing:
        raise SystemExit(f"distractors: no sequence(s) {missing} under {root}")
    return [by_name[n].head(min(max_frames, len(by_name[n]))) if max_frames else by_name[n] for n in names]


def run_set(new_tracker: Callable[[], Tracker], synthetic: list[tuple[SyntheticVideo, Distractor]],
            dev: list[Sequence], figures: Path, log: Callable[[str], None] = print
            ) -> tuple[list[dict], list[Score]]:
    """The benchmark over a set: one report row and one score per sequence, a fresh tracker for each."""
    rows, scores = [], []
    for video, crossing in synthetic:
        log(f"distractors: {video.name}")
        row, result = evaluate_synthetic(video, crossing, new_tracker(), figures)
        rows.append(row)
        scores.append(result)
    for seq in dev:
        log(f"distractors: {seq.name}")
        row, result = evaluate_dev(seq, new_tracker(), figures)
        rows.append(row)
        scores.append(result)
    return rows, scores


def interaction_shares(rows: list[dict], kind: str = "synthetic") -> dict[str, dict[str, float]]:
    """Per mask, the share of its tokens that interact and their mean p(interact), pooled over every
    dividing block, frame and sequence of ``kind``: the one-number form of the appendix's diagnosis
    (distractor against target)."""
    totals: dict[str, np.ndarray] = {}
    for row in rows:
        if row["kind"] != kind:
            continue
        for by_mask in row["blocks"].values():
            for mask, c in by_mask.items():
                tokens = c["tokens"] * c["frames"]
                p = c["p_interact"] * tokens if tokens else 0.0
                here = np.array([c["interacting"] * c["frames"], tokens, p])
                totals[mask] = totals.get(mask, np.zeros(3)) + here
    return {mask: {"share": interacting / tokens if tokens else float("nan"),
                   "p_interact": p / tokens if tokens else float("nan")}
            for mask, (interacting, tokens, p) in totals.items()}


# ------------------------------------------------------------------------------------------------ report
def _cell(count: dict) -> str:
    return (f"{count['interacting']:.1f}/{count['tokens']:.1f} ({100 * count['share']:.0f}%) "
            f"p {count['p_interact']:.2f}")


def _pooled(rows: list[dict], block: int, mask: str) -> dict:
    """Mean per-frame counts over sequences; share and p(interact) pooled over all their tokens."""
    counts = [r["blocks"][block][mask] for r in rows if block in r["blocks"]]
    weights = [c["tokens"] * c["frames"] for c in counts]
    tokens = sum(weights) or float("nan")
    return {"interacting": float(np.mean([c["interacting"] for c in counts])),
            "tokens": float(np.mean([c["tokens"] for c in counts])),
            "share": sum(c["interacting"] * c["frames"] for c in counts) / tokens,
            "p_interact": sum(c["p_interact"] * w for c, w in zip(counts, weights, strict=True) if w)
            / tokens}


def markdown(rows: list[dict], title: str) -> str:
    """One table per kind: AUC and, per block and mask, interacting/total tokens (share) and mean
    p(interact) per frame."""
    lines = [f"# {title}", ""]
    kinds = {"synthetic": ("distractor", "target"), "dev": ("outside", "inside")}
    for kind, masks in kinds.items():
        subset = [r for r in rows if r["kind"] == kind]
        if not subset:
            continue
        blocks = sorted({b for r in subset for b in r["blocks"]})
        extra = ["crossing frames", "on distractor"] if kind == "synthetic" else ["frames"]
        header = ["sequence", *extra, "AUC", *(f"block {b} {m}" for b in blocks for m in masks)]
        lines += [f"## {kind}: interacting tokens / tokens in the mask per frame (share)", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in subset:
            values = ([r["crossing_frames"], r["on_distractor_frames"]] if kind == "synthetic"
                      else [r["scored_frames"]])
            cells = [_cell(r["blocks"][b][m]) if b in r["blocks"] else "-" for b in blocks for m in masks]
            lines.append("| " + " | ".join([r["name"], *map(str, values), f"{r['auc']:.3f}", *cells]) + " |")
        totals = ([sum(r["crossing_frames"] for r in subset), sum(r["on_distractor_frames"] for r in subset)]
                  if kind == "synthetic" else [sum(r["scored_frames"] for r in subset)])
        mean = [_cell(_pooled(subset, b, m)) for b in blocks for m in masks]
        auc_mean = f"{np.mean([r['auc'] for r in subset]):.3f}"
        lines += ["| " + " | ".join(["**mean**", *map(str, totals), auc_mean, *mean]) + " |", ""]
    return "\n".join(lines)


def tracker_factory(checkpoint: str | None, variant: str, template_update: str = "off", threads: int = 1,
                    allow_random: bool = False) -> Callable[[], Tracker]:
    """The one place the benchmark builds trackers: the node's settings on the eager torch backend (which
    the division hooks need), a fresh tracker per sequence; ``template_update`` off or a mode."""
    update = TemplateUpdateConfig.switch(template_update)
    engine = EngineConfig(backend="torch", threads=threads)
    return lambda: build_tracker(checkpoint, variant, engine, allow_random=allow_random,
                                 template_update=update)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grm_ros.evaluation.distractors",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="weights (default: the packaged model)")
    parser.add_argument("--variant", default=DEFAULT_VARIANT, help="variant name or yaml")
    parser.add_argument("--allow-random", action="store_true", help="random weights if no checkpoint (tests)")
    parser.add_argument("--template-update", choices=TEMPLATE_SWITCHES, default="off",
                        help="the tracker's template update, in this mode (default: off)")
    parser.add_argument("--count", type=int, default=12, help="synthetic sequences")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic set")
    parser.add_argument("--length", type=int, default=SYNTH_PARAMS.length, help="frames per synthetic video")
    parser.add_argument("--dev", nargs="*", default=list(DEV_SEQUENCES),
                        help="DEV sequences under --root (none: no DEV part)")
    parser.add_argument("--root", type=Path, default=None, help="DEV root (default: <shared>/sot)")
    parser.add_argument("--max-frames", type=int, default=0, help="frames per DEV sequence (0: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    args = parser.parse_args(argv)
    new_tracker = tracker_factory(args.checkpoint, args.variant, args.template_update, args.threads,
                                  args.allow_random)
    figures = args.out / "figures"
    dev = dev_sequences(args.root or shared_root() / "sot", args.dev, args.max_frames) if args.dev else []

    synthetic = distractor_set(args.count, args.seed, params=replace(SYNTH_PARAMS, length=args.length))
    rows, _ = run_set(new_tracker, synthetic, dev, figures, lambda line: print(line, flush=True))
    title = (f"Distractor benchmark: {args.variant}" + (f" ({args.checkpoint})" if args.checkpoint else "")
             + (f", template update {args.template_update}" if args.template_update != "off" else ""))
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    report = {"settings": settings, "sequences": rows}
    (args.out / "distractors.json").write_text(json.dumps(report, indent=2))
    table = markdown(rows, title)
    (args.out / "distractors.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
