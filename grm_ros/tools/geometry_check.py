"""Measure how far the device crops drift from the authors' reference crops on real sequences.

``python -m grm_ros.tools.geometry_check [--sequences Crossing David] [--frames 30] [--checkpoint F]``

Three numbers per sequence, because each answers a different question:
* crop: grey-level difference of the search crops at the ground-truth box (the geometry alone), for
  the 256-px search crop of the released models and for the variant's own search size;
* step: box difference after one tracker step from the same (ground-truth) state (geometry + network),
  and the same over the steps where both geometries chose the same score-map cell (a flat score map, as
  random weights give, lets a one-grey-level crop difference move the arg-max to another cell);
* run: box difference of two free-running trackers (what an evaluation would see; small differences
  can compound once the two runs pick different score-map cells).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from grm_ros.model import DEFAULT_VARIANT, load_model
from grm_ros.tracking.geometry import crop_batch_raw, sample_target
from grm_ros.tracking.tracker import TrackerConfig, tracker_for

DEFAULT_SEQUENCES = ("Crossing", "David", "DragonBaby", "wakeboard10")


def shared_root() -> Path:
    return Path(os.environ.get("GRM_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))


def read_sequence(folder: Path, limit: int) -> tuple[list[np.ndarray], np.ndarray]:
    """RGB frames and ground truth of a uniform-layout sequence (img/*.jpg + groundtruth.txt)."""
    paths = sorted((folder / "img").glob("*.jpg"))[:limit]
    if not paths:
        raise ValueError(f"no frames in {folder / 'img'}")
    gt = np.loadtxt(folder / "groundtruth.txt", delimiter=",", ndmin=2)[: len(paths)]
    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths], gt


def crop_difference(frames: list[np.ndarray], gt: np.ndarray, factor: float,
                    size: int) -> tuple[float, float, float]:
    """(max, mean, fraction of differing values) of |device - reference| search crops at the GT boxes."""
    diffs = []
    for frame, box in zip(frames, gt, strict=True):
        if not np.all(np.isfinite(box)):
            continue
        reference = sample_target(frame, box, factor, size)[0].astype(np.float32)
        image = torch.from_numpy(frame).permute(2, 0, 1)
        device = crop_batch_raw(image, torch.tensor(box[None]), factor, size)[0]
        diffs.append(np.abs(device[0].permute(1, 2, 0).numpy() - reference))
    stacked = np.stack(diffs)
    return float(stacked.max()), float(stacked.mean()), float((stacked > 0).mean())


def box_differences(model: torch.nn.Module, frames: list[np.ndarray],
                    gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame max coordinate difference (px) between the two geometries, one step from GT and free
    running, and for each step whether both geometries picked the same cell of the windowed score map."""
    step, same_cell, run = [], [], []
    configs = [TrackerConfig(geometry=g, lost_search_scale=1.0) for g in ("reference", "device")]
    trackers = [tracker_for(model, config) for config in configs]
    free = [tracker_for(model, config) for config in configs]
    window = trackers[0].window
    cells: list[int] = []
    hook = model.box_head.register_forward_hook(  # the head's first output is the score map
        lambda _m, _i, out: cells.append(int((out[0].float() * window).flatten().argmax())))
    try:
        for tracker in free:
            tracker.start(frames[0], gt[0])
        for i in range(1, len(frames)):
            if np.all(np.isfinite(gt[i - 1])):
                boxes = []
                for tracker in trackers:
                    tracker.stop_all()
                    tracker.start(frames[i - 1], gt[i - 1])
                    boxes.append(tracker.update(frames[i])[0].box)
                step.append(np.abs(np.subtract(*boxes)).max())
                same_cell.append(cells[-1] == cells[-2])
            runs = [tracker.update(frames[i])[0].box for tracker in free]
            run.append(np.abs(np.subtract(*runs)).max())
    finally:
        hook.remove()
    return np.asarray(step), np.asarray(same_cell), np.asarray(run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", nargs="+", default=list(DEFAULT_SEQUENCES))
    parser.add_argument("--frames", type=int, default=30, help="frames per sequence")
    parser.add_argument("--checkpoint", help="weights (default: packaged weights, else random with --seed)")
    parser.add_argument("--variant", default=DEFAULT_VARIANT)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    model = load_model(args.variant, args.checkpoint, allow_random=args.checkpoint is None)
    cfg = model.cfg
    print(f"variant {cfg.name}, {args.frames} frames per sequence; crops in grey levels, boxes in pixels")
    print(f"sequence      crop256 max/mean/frac   crop{cfg.search_size} max/mean/frac   "
          "step max/mean/<1px  same-cell steps: share/max   run max/mean/<1px")
    for name in args.sequences:
        frames, gt = read_sequence(shared_root() / "sot" / name, args.frames)
        big = crop_difference(frames, gt, 4.0, 256)
        own = crop_difference(frames, gt, cfg.search_factor, cfg.search_size)
        step, same_cell, run = box_differences(model, frames, gt)
        same = step[same_cell]
        print(f"{name:12s}  {big[0]:.0f} / {big[1]:.4f} / {big[2]:.3f}    "
              f"{own[0]:.0f} / {own[1]:.4f} / {own[2]:.3f}    "
              f"{step.max():.3f} / {step.mean():.4f} / {(step < 1).mean():.2f}   "
              f"{same_cell.mean():.2f} / {same.max(initial=0.0):.3f}   "
              f"{run.max():.3f} / {run.mean():.4f} / {(run < 1).mean():.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
