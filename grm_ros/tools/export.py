"""grm-export: the ONNX file of a model, as the inference engine builds it, checked against PyTorch.

The file is the ``onnxruntime`` backend's own build for that batch size (``grm_ros.model.engine.onnx``:
static shapes, no argsort or one-hot, tau baked in), taken from its cache and copied to ``--out``. The
report gives every map's max abs difference from the ``torch`` backend and both backends' median CPU
latency, timed alternately with the same thread count.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

from grm_ros.model.checkpoint import DEFAULT_VARIANT, load_model
from grm_ros.model.engine import MAP_NAMES, EngineConfig, InferenceEngine, example_inputs
from grm_ros.model.engine.inference_engine import cpu_twin, faster_cpu_backend
from grm_ros.model.engine.onnx import cached_onnx, weights_digest


def export_report(engine: InferenceEngine, reference: InferenceEngine, out: Path, batch: int,
                  runs: int) -> dict:
    """Copy ``engine``'s (onnxruntime) build for ``batch`` to ``out``; parity and latency against
    ``reference`` (torch)."""
    built = cached_onnx(engine.net, batch, weights_digest(engine.net), engine.config.cache_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(built, out)
    template, search = example_inputs(engine.cfg, batch, seed=1)
    got, expected = engine.maps(template, search), reference.maps(template, search)
    diffs = {name: float((g - e).abs().max()) for name, g, e in zip(MAP_NAMES, got, expected, strict=True)}
    _, medians = faster_cpu_backend({"torch": reference.maps, "onnxruntime": engine.maps}, template, search,
                                    runs)
    return {"onnx": str(out), "variant": engine.cfg.name, "batch": batch, "threshold": engine.threshold,
            "max_abs_diff": diffs, "max_abs_diff_all": max(diffs.values()), "torch_cpu_ms": medians["torch"],
            "onnxruntime_cpu_ms": medians["onnxruntime"], "threads": engine.threads}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grm-export", description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default=None, help="variant name or yaml (default: the package default)")
    parser.add_argument("--checkpoint", default=None, help="weights (default: the package default model)")
    parser.add_argument("--allow-random", action="store_true", help="random weights if no default model")
    parser.add_argument("--out", required=True, type=Path, help="ONNX file to write")
    parser.add_argument("--batch", type=int, default=1, help="static batch size (targets per frame)")
    parser.add_argument("--threshold", type=float, default=None, help="tau (default: the variant's DEFAULT)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs for the CPU speed comparison")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for both backends")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max abs map difference allowed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.batch < 1:
        parser.error(f"--batch must be >= 1, got {args.batch}")
    model = load_model(args.variant or DEFAULT_VARIANT, args.checkpoint, allow_random=args.allow_random)
    reference = InferenceEngine(cpu_twin(model), EngineConfig(backend="torch", threads=args.threads),
                                args.threshold)
    engine = InferenceEngine(model, EngineConfig(backend="onnxruntime", threads=args.threads), args.threshold)
    report = export_report(engine, reference, args.out, args.batch, args.runs)
    print(json.dumps(report, indent=2))
    if report["max_abs_diff_all"] > args.tolerance:
        print(f"grm-export: onnxruntime differs from PyTorch by {report['max_abs_diff_all']:.2e} "
              f"> {args.tolerance:.0e}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
