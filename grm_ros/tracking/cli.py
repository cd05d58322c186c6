"""``grm-track``: track one target through a folder of frames and write one ``x,y,w,h`` line per frame.

The output has the same format as the evaluation's result files (and the sequences' groundtruth.txt):
line 1 is the initial box, then one tracked box per frame. With ``--bag`` it tracks an image topic of
a rosbag2 instead and writes the tracks to a new bag (``grm_ros.ros.bag_track``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from grm_ros.console import ProgressBar, check_output_file
from grm_ros.model.engine import BACKENDS, DTYPES, EngineConfig
from grm_ros.tools.division_maps import division_overlays
from grm_ros.tracking.selection import POLICIES, SelectionConfig
from grm_ros.tracking.tracker import GEOMETRIES, Tracker, build_tracker

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
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--frames", type=Path, help="folder of frames, sorted by name")
    source.add_argument("--bag", type=Path, help="rosbag2 folder (MCAP or sqlite3) with an image topic")
    parser.add_argument("--box", type=parse_box, help="first-frame box x,y,w,h in pixels")
    parser.add_argument("--out", type=Path, required=True,
                        help="result file (one x,y,w,h line per frame); with --bag a new bag folder")
    bag = parser.add_argument_group("bags")
    bag.add_argument("--image-topic", help="sensor_msgs/Image or CompressedImage topic to track")
    bag.add_argument("--detections-topic",
                     help="vision_msgs/Detection2DArray topic of the bag that starts targets (not --box)")
    bag.add_argument("--policy", choices=POLICIES, default="highest_score",
                     help="which detections start targets (the node's detections.policy)")
    bag.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="storage of the new bag")
    parser.add_argument("--checkpoint", help="GRM checkpoint (default: the packaged weights)")
    parser.add_argument("--variant", help="GRM variant name or yaml path (default: the package default)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="inference backend (auto: the fastest measured on the CPU, CUDA graphs on CUDA)")
    parser.add_argument("--threads", type=int, default=None, help="torch / onnxruntime CPU threads")
    parser.add_argument("--geometry", default="device", choices=GEOMETRIES)
    parser.add_argument("--benchmark", help="benchmark name selecting the division threshold (e.g. lasot)")
    parser.add_argument("--allow-random", action="store_true",
                        help="run with random weights when no checkpoint exists (testing only)")
    parser.add_argument("--show-division", type=Path, metavar="DIR",
                        help="write per frame and dividing block which search tokens interact with the "
                             "template (PNG overlays; runs backend torch, which module hooks need)")
    return parser


def _tracker(args: argparse.Namespace, color_order: str) -> Tracker:
    backend = "torch" if args.show_division else args.backend
    engine = EngineConfig(backend=backend, device=args.device, dtype=args.dtype, threads=args.threads)
    return build_tracker(args.checkpoint, args.variant, engine, allow_random=args.allow_random,
                         geometry=args.geometry, benchmark=args.benchmark,
                         color_order=color_order)


def _track_bag(args: argparse.Namespace) -> int:
    from grm_ros.ros.bag_track import DETECTIONS_TOPIC, TRACKS_TOPIC, track_bag  # rosbags only for bags

    run = track_bag(lambda: _tracker(args, "rgb"), args.bag, args.image_topic, args.out, args.box,
                    args.detections_topic, SelectionConfig(policy=args.policy), args.storage)
    if run.bad_images:
        print(f"grm-track: warning: skipped {run.bad_images} images that could not be decoded "
              f"(first at stamp {run.first_bad_image})", file=sys.stderr)
    if run.unmatched_detections:
        print(f"grm-track: warning: {run.unmatched_detections} detection messages matched no image stamp",
              file=sys.stderr)
    written = TRACKS_TOPIC + (f" and {DETECTIONS_TOPIC}" if run.detections_written else
                              " (no vision_msgs definitions installed: no detections topic)")
    print(f"grm-track: {run.frames} frames tracked; {written} written to {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.bag is None and (args.image_topic or args.detections_topic):
        parser.error("--image-topic and --detections-topic go with --bag")
    if args.bag is None and args.box is None:
        parser.error("--frames needs --box")
    one_start = (args.box is None) != (args.detections_topic is None)
    if args.bag is not None and (args.image_topic is None or not one_start):
        parser.error("--bag needs --image-topic and exactly one of --box or --detections-topic")
    if args.show_division and (args.bag is not None or args.backend not in ("auto", "torch")):
        parser.error("--show-division goes with --frames and backend torch (chosen when --backend is auto)")
    try:
        if args.bag is not None:
            return _track_bag(args)
        check_output_file(args.out)
        frames = list_frames(args.frames)
        tracker = _tracker(args, "bgr")
        tracker.start(read_frame(frames[0]), args.box)
        boxes = [args.box]
        bar = ProgressBar(len(frames) - 1)
        with division_overlays(tracker, args.show_division) as update:
            for path in frames[1:]:
                (result,) = update(read_frame(path))
                boxes.append(result.box)
                bar.update()
        bar.close()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("".join(",".join(f"{v:.4f}" for v in box) + "\n" for box in boxes))
    except (ValueError, RuntimeError, OSError) as err:  # OSError: a checkpoint folder, a full disk
        print(f"grm-track: error: {err}", file=sys.stderr)
        return 2
    print(f"grm-track: {len(boxes)} boxes written to {args.out} ({bar.fps:.1f} fps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
