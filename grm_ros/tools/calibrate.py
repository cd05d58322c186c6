"""grm-calibrate: record each division layer's behaviour on real sequences and write the derived variant
that skips the layers that never change (appendix C.2), then measure what skipping costs and gains.

Steps (one command):
1. track every sequence (first ``--max-frames`` frames) with the original model, the authors' tracker
   settings, recording per dividing block the fraction of search tokens that interact with the template;
2. ``propose_modes``: a block is two_stream if that fraction never exceeded ``--tolerance``, one_stream if
   it never fell below 1 - tolerance; write the derived variant yaml (``--out``);
3. unless ``--no-compare``: track the same frames with the derived model (same checkpoint, the fixed blocks'
   division MLPs ignored), and report forward speed-up (interleaved, same run), the largest score/size/offset
   map difference on the recorded crops, the per-frame IoU between the two trackers' boxes, and the
   success AUC of both against the ground truth.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from grm_ros.bench.model_bench import max_map_difference
from grm_ros.bench.stats import interleaved, with_ratios
from grm_ros.datasets import list_sequences, load_frame
from grm_ros.datasets.sequence import Sequence, shared_root
from grm_ros.evaluation.metrics import iou, success_curve
from grm_ros.model import GRM, load_model, load_variant
from grm_ros.model.checkpoint import DEFAULT_VARIANT, load_state_dict_strict
from grm_ros.model.skipping import (
    DivisionRecorder,
    derive_config,
    drop_skipped_division_keys,
    propose_modes,
    write_variant,
)
from grm_ros.tracking.tracker import TrackerConfig, tracker_for

DEFAULT_TOLERANCE = 0.01  # share of search tokens allowed to disagree with a fixed layer's class
KEPT_CROPS = 8  # (template, search) pairs kept for the output-difference check


def track(model: GRM, sequences: list[Sequence], threshold: float | None,
          crops: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> list[np.ndarray]:
    """Boxes per sequence (first-frame box, then one per frame) with the authors' tracker settings;
    the first ``KEPT_CROPS`` forward inputs are appended to ``crops`` when given."""
    def keep(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        if crops is not None and len(crops) < KEPT_CROPS:
            crops.append((args[0].clone(), args[1].clone()))

    handle = model.backbone.register_forward_pre_hook(keep, with_kwargs=True)  # args: template, search
    out = []
    try:
        for seq in sequences:
            config = TrackerConfig.paper()
            config.division_threshold = threshold
            tracker = tracker_for(model, config)
            tracker.start(load_frame(seq.frames[0]), seq.gt[0])
            boxes = [seq.gt[0]] + [np.array(tracker.update(load_frame(f))[0].box) for f in seq.frames[1:]]
            out.append(np.stack(boxes))
    finally:
        handle.remove()
    return out


def success_auc(boxes: list[np.ndarray], sequences: list[Sequence]) -> float:
    """Mean over sequences of the success-curve AUC on visible frames after the first."""
    aucs = []
    for pred, seq in zip(boxes, sequences, strict=True):
        visible = seq.visible.copy()
        visible[0] = False
        aucs.append(float(success_curve(iou(pred[visible], seq.gt[visible])).mean()))
    return float(np.mean(aucs))


@torch.inference_mode()
def compare(original: GRM, derived: GRM, sequences: list[Sequence], threshold: float | None,
            original_boxes: list[np.ndarray], crops: list[tuple[torch.Tensor, torch.Tensor]],
            runs: int) -> dict:
    """What skipping changes: speed (interleaved forwards on a recorded crop), outputs and accuracy."""
    derived_boxes = track(derived, sequences, threshold)
    tau = threshold or 0.0
    map_diff = max(max_map_difference(original.maps(z, x, tau), derived.maps(z, x, tau)) for z, x in crops)
    z, x = crops[-1]
    times = interleaved({"original": lambda: original(z, x, threshold=tau),
                         "derived": lambda: derived(z, x, threshold=tau)}, runs)
    pairs = zip(original_boxes, derived_boxes, strict=True)
    agreement = np.concatenate([iou(a[1:], b[1:]) for a, b in pairs])
    return {"forward": with_ratios(times, "original"), "max_abs_map_diff": map_diff,
            "box_iou_original_vs_derived": {"mean": float(agreement.mean()), "min": float(agreement.min())},
            "success_auc": {"original": success_auc(original_boxes, sequences),
                            "derived": success_auc(derived_boxes, sequences)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grm-calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default=DEFAULT_VARIANT, help="variant name or yaml of the checkpoint")
    parser.add_argument("--checkpoint", default=None, help="weights (default: the package default model)")
    parser.add_argument("--allow-random", action="store_true", help="random weights if no default model")
    parser.add_argument("--root", default=None, help="sequences root (default: <shared>/sot)")
    parser.add_argument("--layout", default="uniform", help="dataset layout of --root")
    parser.add_argument("--sequences", nargs="*", default=None, help="only these sequence names")
    parser.add_argument("--max-frames", type=int, default=60, help="frames per sequence (0: all)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="fraction of search tokens a fixed layer may get wrong on the recorded frames")
    parser.add_argument("--threshold", type=float, default=None, help="division tau (default: variant's)")
    parser.add_argument("--name", default=None, help="name of the derived variant (default <variant>_skip)")
    parser.add_argument("--out", required=True, help="derived variant yaml to write")
    parser.add_argument("--report", default=None, help="JSON report (default: <out>.json)")
    parser.add_argument("--no-compare", action="store_true", help="only calibrate, do not measure")
    parser.add_argument("--runs", type=int, default=10, help="timed forwards per model in the comparison")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    root = Path(args.root) if args.root else shared_root() / "sot"
    sequences = list_sequences(root, args.layout)
    if args.sequences:
        missing = sorted(set(args.sequences) - {s.name for s in sequences})
        if missing:
            raise SystemExit(f"grm-calibrate: no sequence(s) {missing} under {root}")
        sequences = [s for s in sequences if s.name in set(args.sequences)]
    if args.max_frames:
        sequences = [s.head(min(args.max_frames, len(s))) for s in sequences]

    cfg = load_variant(args.variant)
    original = load_model(cfg, args.checkpoint, allow_random=args.allow_random)
    recorder, crops = DivisionRecorder(), []
    with recorder.attach(original):
        original_boxes = track(original, sequences, args.threshold, crops)
    modes = propose_modes(cfg, recorder, args.tolerance)
    derived_cfg = derive_config(cfg, modes, args.name)
    frames = sum(len(s) - 1 for s in sequences)
    out = write_variant(derived_cfg, args.out, comment=(
        f"Derived from {cfg.name} by grm-calibrate (tolerance {args.tolerance}) on {frames} frames of "
        f"{len(sequences)} sequence(s) under {root}.\nLoads the {cfg.name} checkpoint; the division MLPs of "
        "the fixed blocks are ignored."))
    report = {"variant": cfg.name, "checkpoint": args.checkpoint, "derived": str(out),
              "tolerance": args.tolerance, "frames": frames, "sequences": [s.name for s in sequences],
              "layers": recorder.summary(), "division_modes": list(modes)}
    print(f"division modes (blocks 1..{cfg.depth - 1}): {', '.join(modes)}")
    if not args.no_compare:
        # The original's weights as loaded (a file, or random ones) minus the fixed blocks' division MLPs:
        # exactly what load_model(derived variant, same checkpoint) does.
        derived = GRM(derived_cfg).eval()
        state, _ = drop_skipped_division_keys(original.state_dict(), derived_cfg)
        load_state_dict_strict(derived, state, f"{cfg.name} as loaded")
        report["comparison"] = compare(original, derived, sequences, args.threshold, original_boxes, crops,
                                       args.runs)
        c = report["comparison"]
        print(f"forward speed-up x{c['forward']['derived']['speedup_vs_original']:.2f}, max |map diff| "
              f"{c['max_abs_map_diff']:.2e}, box IoU mean {c['box_iou_original_vs_derived']['mean']:.4f}, "
              f"success AUC {c['success_auc']['original']:.4f} -> {c['success_auc']['derived']:.4f}")
    report_path = Path(args.report) if args.report else out.with_suffix(".json")
    report_path.write_text(json.dumps(report, indent=2))
    print(f"wrote {out} and {report_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
