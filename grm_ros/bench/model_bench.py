"""Forward latency of one variant: the reference path (eager fp32, the authors' masked softmax) against the
fast path (boolean-mask SDPA, fp16 and a CUDA graph on CUDA), in one interleaved run, plus their parity."""

from __future__ import annotations

import torch

from grm_ros.bench.stats import interleaved, synchronizer, with_ratios
from grm_ros.model import GRM, GRMConfig, load_variant
from grm_ros.model.graphs import MAP_KEYS, StepRunner


def random_model(cfg: GRMConfig, seed: int = 0) -> GRM:
    """Random weights: speed does not depend on their values (the division splits tokens roughly evenly)."""
    torch.manual_seed(seed)
    return GRM(cfg).eval()


def model_inputs(cfg: GRMConfig, batch: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor,
                                                                                          torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    template = torch.randn(batch, 3, cfg.template_size, cfg.template_size, generator=gen)
    search = torch.randn(batch, 3, cfg.search_size, cfg.search_size, generator=gen)
    return template.to(device), search.to(device)


def max_map_difference(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in MAP_KEYS)


@torch.inference_mode()
def bench_model(variant: str | GRMConfig, device: str = "cpu", runs: int = 10, batch: int = 1,
                fast_dtype: str | None = None, cuda_graphs: bool = True, warmup: int = 2,
                compile: bool = False) -> dict:
    """Latency figures for ``reference`` (fp32 eager) and ``fast`` (and on CUDA ``fast_fp32``; with
    ``compile`` also ``fast_compiled``, fp32), ratios to the reference, and each fp32 fast path's max abs
    output difference from the reference."""
    cfg = variant if isinstance(variant, GRMConfig) else load_variant(variant)
    dev = torch.device(device)
    dtype_name = fast_dtype or ("fp16" if dev.type == "cuda" else "fp32")
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype_name]
    reference = random_model(cfg).to(dev).set_attention("reference")
    fast32 = random_model(cfg).to(dev)  # same seed, same weights
    template, search = model_inputs(cfg, batch, dev)
    parity = max_map_difference(reference(template, search), fast32(template, search))

    graphs = cuda_graphs and dev.type == "cuda"
    runner32 = StepRunner(fast32, capture=graphs)
    fns = {"reference": lambda: reference(template, search), "fast": lambda: runner32(template, search)}
    parity_lowp = None
    if dtype != torch.float32:
        runner = StepRunner(random_model(cfg).to(dev, dtype), capture=graphs)
        t_low, s_low = template.to(dtype), search.to(dtype)
        fns = {"reference": fns["reference"], "fast": lambda: runner(t_low, s_low), "fast_fp32": fns["fast"]}
        parity_lowp = max_map_difference(reference(template, search), runner(t_low, s_low))
    parity_compiled = None
    if compile:
        compiled = StepRunner(random_model(cfg).to(dev), capture=False, compile=True)
        compiled.warmup((batch,))
        fns["fast_compiled"] = lambda: compiled(template, search)
        parity_compiled = max_map_difference(reference(template, search), compiled(template, search))
    times = interleaved(fns, runs, warmup, synchronizer(dev))
    return {"variant": cfg.name, "device": str(dev), "batch": batch, "fast_dtype": dtype_name,
            "cuda_graphs": graphs, "threads": torch.get_num_threads(),
            "paths": with_ratios(times, "reference"), "fast_fp32_max_abs_diff": parity,
            "fast_lowp_max_abs_diff": parity_lowp, "fast_compiled_max_abs_diff": parity_compiled}
