"""Forward latency of one variant: the reference path (eager fp32, the authors' masked softmax) against the
fast path (boolean-mask SDPA; oneDNN linears on the CPU; fp16 and a CUDA graph on CUDA), in one
interleaved run, plus their parity.

On the CPU the run also times the fast forward's dense layers alone (every linear and conv2d, with the
kernels and inputs the fast path used, replayed). The reference runs the same products (through MKL), or
larger ones where its division MLP reads the concatenated [search ; template] features, so reference /
floor bounds what any exact fp32 path built on these kernels can gain: it shows how much is left to win.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

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


DENSE_OPS = ("linear", "_linear_pointwise", "conv2d")  # _linear_pointwise: oneDNN linears (onednn.py)


class _DenseCallRecorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.overloadpacket.__name__ in DENSE_OPS:
            self.calls.append((func, args, kwargs))
        return func(*args, **kwargs)


def dense_floor(forward: Callable[[], object]) -> Callable[[], None]:
    """Replay of only the dense layers (``DENSE_OPS``) of one ``forward`` call, with the inputs they had.

    Both run in inference mode, where linear and conv2d reach the recorder whole rather than decomposed.
    """
    with torch.inference_mode(), _DenseCallRecorder() as recorder:
        forward()
    if not recorder.calls:
        raise ValueError("the forward ran no linear or conv2d")
    calls = recorder.calls

    @torch.inference_mode()
    def replay() -> None:
        for func, args, kwargs in calls:
            func(*args, **kwargs)

    return replay


def max_map_difference(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in MAP_KEYS)


@torch.inference_mode()
def bench_model(variant: str | GRMConfig, device: str = "cpu", runs: int = 10, batch: int = 1,
                fast_dtype: str | None = None, cuda_graphs: bool = True, warmup: int = 2,
                compile: bool = False) -> dict:
    """Latency figures for ``reference`` (fp32 eager) and ``fast`` (and on CUDA ``fast_fp32``; with
    ``compile`` also ``fast_compiled``, fp32; on the CPU ``dense_floor``), ratios to the reference, and
    each fp32 fast path's max abs output difference from the reference."""
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
    if dev.type == "cpu":
        fns["dense_floor"] = dense_floor(fns["fast"])
    times = interleaved(fns, runs, warmup, synchronizer(dev))
    return {"variant": cfg.name, "device": str(dev), "batch": batch, "fast_dtype": dtype_name,
            "cuda_graphs": graphs, "threads": torch.get_num_threads(),
            "paths": with_ratios(times, "reference"), "fast_fp32_max_abs_diff": parity,
            "fast_lowp_max_abs_diff": parity_lowp, "fast_compiled_max_abs_diff": parity_compiled}
