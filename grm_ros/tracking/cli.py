"""``grm-track``: track one target through a folder of frames and write one ``x,y,w,h`` line per frame.

The output has the same format as the evaluation's result files (and the sequences' groundtruth.txt):
line 1 is the initial box, then one tracked box per frame.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from grm_ros.tracking.tracker import DTYPES, GEOMETRIES, build_tracker

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def parse_box(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"box must be x,y,w,h numbers, got {text!r}") from None
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"box must have 4 comma-separated numbers, got {text!r}")
    x, y, w, h = values
    return x, y, w, h


def list_frames(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ValueError(f"frames folder {folder} does not exist")
    frames = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    if not frames:
        raise ValueError(f"no frames ({', '.join(FRAME_SUFFIXES)}) in {folder}")
    return frames


def read_frame(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read frame {path}")
    return image  # BGR; the tracker is told so


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grm-track", description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=Path, required=True, help="folder of frames, sorted by name")
    parser.add_argument("--box", type=parse_box, required=True, help="first-frame box x,y,w,h in pixels")
    parser.add_argument("--out", type=Path, required=True, help="result file (one x,y,w,h line per frame)")
    parser.add_argument("--checkpoint", help="GRM checkpoint (default: the packaged weights)")
    parser.add_argument("--variant", help="GRM variant name or yaml path (default: the package default)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    parser.add_argument("--geometry", default="device", choices=GEOMETRIES)
    parser.add_argument("--benchmark", help="benchmark name selecting the division threshold (e.g. lasot)")
    parser.add_argument("--allow-random", action="store_true",
                        help="run with random weights when no checkpoint exists (testing only)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        frames = list_frames(args.frames)
        tracker = build_tracker(args.checkpoint, args.variant, device=args.device, dtype=args.dtype,
                                allow_random=args.allow_random, geometry=args.geometry,
                                benchmark=args.benchmark, color_order="bgr")
        tracker.start(read_frame(frames[0]), args.box)
        boxes = [args.box]
        for path in frames[1:]:
            (result,) = tracker.update(read_frame(path))
            boxes.append(result.box)
    except (ValueError, RuntimeError, FileNotFoundError) as err:
        print(f"grm-track: error: {err}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(",".join(f"{v:.4f}" for v in box) + "\n" for box in boxes))
    print(f"grm-track: {len(boxes)} boxes written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
