"""grm-bench (``make bench``): model, tracker and node figures in one run, printed and written as JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from grm_ros.bench.model_bench import available_backends, bench_model
from grm_ros.model import DEFAULT_VARIANT
from grm_ros.model.engine import BACKENDS

DEFAULT_VARIANTS = (DEFAULT_VARIANT, "vitb_256")
RESOLUTIONS = ("640x480", "1920x1080")  # tracker_bench.RESOLUTIONS; that module is imported only when used


def machine() -> dict:
    info = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
            "load_avg": os.getloadavg()}
    if torch.cuda.is_available():
        info["cuda"] = torch.cuda.get_device_name()
    return info


def print_model(result: dict) -> None:
    for path, s in result["paths"].items():
        diff = result["max_abs_diff"].get(path)
        parity = f"  max |diff| {diff:.1e}" if diff is not None else ""
        print(f"model {result['variant']:>12} b{result['batch']} {path:>12} {result['device']} "
              f"{result['threads']}t: median {s['median_ms']:8.2f} ms  p90 {s['p90_ms']:8.2f}  "
              f"p99 {s['p99_ms']:8.2f}  x{s['speedup_vs_reference']:.2f} vs reference{parity}")
    if "dense_floor" in result["paths"]:
        ceiling = result["paths"]["dense_floor"]["speedup_vs_reference"]
        print(f"model {result['variant']:>12} b{result['batch']} ceiling: the dense layers alone take "
              f"1/{ceiling:.2f} of the reference, so no exact fp32 path on them can beat it by more")


def print_tracker(result: dict) -> None:
    geometries = result["geometries"]
    baseline = geometries.get("nanotrack")
    for name, s in geometries.items():
        ratio = ""
        if baseline and name != "nanotrack":
            ratio = f"  x{s['fps'] / baseline['fps']:.2f} of NanoTrack's fps"
        backend = f" [{s['backend']}]" if "backend" in s else ""
        print(f"tracker {result['variant']:>10} {result['resolution']:>9} {result['targets']} target(s) "
              f"{result['threads']}t {name:>9}{backend}: median {s['median_ms']:7.2f} ms  "
              f"p90 {s['p90_ms']:7.2f}  p99 {s['p99_ms']:7.2f}  ({s['fps']:.1f} fps){ratio}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grm-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS),
                        help="variants for the model forward figures")
    parser.add_argument("--tracker-variant", default=DEFAULT_VARIANT,
                        help="variant for tracker and node figures")
    parser.add_argument("--runs", type=int, default=20, help="timed forwards per path")
    parser.add_argument("--batches", type=int, nargs="+", default=[1],
                        help="batch sizes for the model figures")
    parser.add_argument("--frames", type=int, default=20, help="timed tracker / node frames")
    parser.add_argument("--targets", type=int, nargs="+", default=[1, 4],
                        help="target counts for the tracker")
    parser.add_argument("--resolutions", nargs="+", default=list(RESOLUTIONS), choices=list(RESOLUTIONS))
    parser.add_argument("--threads", type=int, default=None, help="engine CPU threads (default: torch's)")
    parser.add_argument("--dtype", default=None, help="fast-path / tracker dtype (default fp16 on CUDA)")
    parser.add_argument("--backends", nargs="+", default=None, choices=BACKENDS[1:],
                        help="backends for the model figures (default: every one available here)")
    parser.add_argument("--compile", action="store_true",
                        help="with the default --backends, also time compiled (about a minute per compile)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="the tracker's backend")
    parser.add_argument("--skip", nargs="*", default=[], choices=["model", "tracker", "node"])
    parser.add_argument("--out", default="out/bench/bench.json", help="JSON report")
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    dtype = args.dtype or ("fp16" if cuda else "fp32")
    backends = args.backends or available_backends(args.device, args.compile)
    report: dict = {"machine": machine(), "device": args.device, "threads": args.threads,
                    "started": time.time()}
    if "model" not in args.skip:
        report["model"] = []
        for variant in args.variants:
            for batch in args.batches:
                result = bench_model(variant, args.device, args.runs, batch, dtype, backends,
                                     threads=args.threads)
                print_model(result)
                report["model"].append(result)
    if "tracker" not in args.skip:  # needs cv2 (reference crops); imported here so model figures do not
        from grm_ros.bench.tracker_bench import bench_tracker

        report["tracker"] = []
        for resolution in args.resolutions:
            for targets in args.targets:
                result = bench_tracker(args.tracker_variant, args.device, dtype, resolution, targets,
                                       frames=args.frames, backend=args.backend, threads=args.threads)
                print_tracker(result)
                report["tracker"].append(result)
    if "node" not in args.skip:
        from grm_ros.bench.node_bench import bench_node, node_available

        if node_available():
            result = bench_node(args.tracker_variant, args.device, dtype, "1920x1080", frames=args.frames)
            s = result["latency"]
            print(f"node {result['variant']} 1920x1080 stamp->tracks: median {s['median_ms']:.1f} ms  "
                  f"p90 {s['p90_ms']:.1f}  p99 {s['p99_ms']:.1f}")
            report["node"] = result
        else:
            print("node: skipped, rclpy is not importable (source scripts/env.sh or install ROS 2)")
            report["node"] = {"skipped": "rclpy not importable"}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
