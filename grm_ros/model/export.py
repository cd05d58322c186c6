"""ONNX export of the inference network (for onnxruntime and TensorRT users), checked against PyTorch.

The graph is the fast path at a fixed batch size: static shapes, the division as a comparison (no argsort,
no one-hot), the attention mask as a comparison of group ids. The threshold tau is baked in; ``ratio`` is
not exported (it needs top-k and no released setting uses it).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from grm_ros.model.checkpoint import DEFAULT_VARIANT, load_model
from grm_ros.model.grm import GRM

OUTPUT_NAMES = ("score_map", "size_map", "offset_map", "pred_boxes")
OPSET = 17


class InferenceNet(nn.Module):
    """GRM as a function of (template, search) with tau fixed: the four tensors a tracker reads."""

    def __init__(self, model: GRM, threshold: float = 0.0) -> None:
        super().__init__()
        self.model, self.threshold = model, threshold

    def forward(self, template: Tensor, search: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        out = self.model(template, search, threshold=self.threshold)
        return tuple(out[k] for k in OUTPUT_NAMES)


def example_inputs(model: GRM, batch: int = 1, seed: int = 0) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    return (torch.randn(batch, 3, cfg.template_size, cfg.template_size, generator=gen),
            torch.randn(batch, 3, cfg.search_size, cfg.search_size, generator=gen))


def export_onnx(model: GRM, path: str | Path, batch: int = 1, threshold: float = 0.0) -> Path:
    """Write the fast-path network for ``batch`` targets to ``path`` (fp32, CPU trace)."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = InferenceNet(model.cpu().float().eval().set_attention("fast"), threshold)
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracer notices
        warnings.simplefilter("ignore")
        torch.onnx.export(net, example_inputs(model, batch), str(path), input_names=["template", "search"],
                          output_names=list(OUTPUT_NAMES), opset_version=OPSET, dynamo=False)
    return path


def _median_ms(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def check_onnx(model: GRM, path: str | Path, batch: int = 1, threshold: float = 0.0, runs: int = 5,
               threads: int | None = None) -> dict:
    """Max abs difference of every output between onnxruntime (CPU) and PyTorch on the same random
    inputs, and both runtimes' median CPU latency measured alternately in this call, with the same number
    of threads (``threads``, default torch's current setting)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Spinning ORT workers would steal the cores torch is being timed on (and vice versa).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    threads = threads or torch.get_num_threads()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    template, search = example_inputs(model, batch, seed=1)
    net = InferenceNet(model.cpu().float().eval().set_attention("fast"), threshold)
    feeds = {"template": template.numpy(), "search": search.numpy()}
    with torch.inference_mode():
        expected = [t.numpy() for t in net(template, search)]
        got = session.run(list(OUTPUT_NAMES), feeds)
        diffs = {k: float(np.abs(e - g).max()) for k, e, g in zip(OUTPUT_NAMES, expected, got, strict=True)}
        torch_ms, ort_ms = [], []
        for _ in range(runs):  # alternate, so both see the same machine load
            torch_ms.append(_median_ms(lambda: net(template, search), 1))
            ort_ms.append(_median_ms(lambda: session.run(None, feeds), 1))
    return {"variant": model.cfg.name, "batch": batch, "max_abs_diff": diffs,
            "max_abs_diff_all": max(diffs.values()), "torch_cpu_ms": float(np.median(torch_ms)),
            "onnxruntime_cpu_ms": float(np.median(ort_ms)),
            "threads": threads}


def main(argv: list[str] | None = None) -> int:
    """grm-export: write the ONNX file and print the parity / speed check as JSON."""
    parser = argparse.ArgumentParser(prog="grm-export", description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default=None, help="variant name or yaml (default: the package default)")
    parser.add_argument("--checkpoint", default=None, help="weights (default: the package default model)")
    parser.add_argument("--allow-random", action="store_true", help="random weights if no default model")
    parser.add_argument("--out", required=True, help="ONNX file to write")
    parser.add_argument("--batch", type=int, default=1, help="static batch size (targets per frame)")
    parser.add_argument("--threshold", type=float, default=None, help="tau (default: the variant's DEFAULT)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs for the CPU speed comparison")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for both runtimes")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max abs output difference allowed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)

    model = load_model(args.variant or DEFAULT_VARIANT, args.checkpoint, allow_random=args.allow_random)
    tau = model.cfg.threshold_for(None) if args.threshold is None else args.threshold
    path = export_onnx(model, args.out, args.batch, tau)
    report = {"onnx": str(path), "threshold": tau, **check_onnx(model, path, args.batch, tau, args.runs,
                                                                        args.threads)}
    print(json.dumps(report, indent=2))
    if report["max_abs_diff_all"] > args.tolerance:
        print(f"grm-export: onnxruntime differs from PyTorch by {report['max_abs_diff_all']:.2e} "
              f"> {args.tolerance:.0e}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
