"""Forward latency of one variant on every inference backend available here, against the reference path
(eager fp32, the authors' masked softmax), in one interleaved run, plus each backend's parity.

Every backend runs in an ``InferenceEngine`` on the same random weights. On the CPU the run also times
the ``torch`` backend's dense layers alone (every linear and conv2d, with the kernels and inputs it used,
replayed). The reference runs the same products (through MKL), or larger ones where its division MLP reads
the concatenated [search ; template] features, so reference / floor bounds what any exact fp32 path built
on these kernels can gain: it shows how much is left to win.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

from grm_ros.bench.stats import interleaved, synchronizer, with_ratios
from grm_ros.model import GRM, GRMConfig, load_variant
from grm_ros.model.engine import EngineConfig, InferenceEngine, example_inputs


def random_model(cfg: GRMConfig, seed: int = 0) -> GRM:
    """Random weights: speed does not depend on their values (the division splits tokens roughly evenly)."""
    torch.manual_seed(seed)
    return GRM(cfg).eval()


def available_backends(device: str, compile: bool = False) -> tuple[str, ...]:
    """The backends that can run on ``device`` here (``compiled`` only when asked: minutes to build)."""
    cuda = torch.device(device).type == "cuda"
    found = ["torch"] + (["compiled"] if compile else [])
    if cuda:
        found += ["cuda_graphs"] + (["tensorrt"] if importlib.util.find_spec("tensorrt") else [])
    elif importlib.util.find_spec("onnxruntime"):
        found.append("onnxruntime")
    return tuple(found)


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


def max_map_difference(a: Sequence[Tensor], b: Sequence[Tensor]) -> float:
    """Largest abs difference over the (score, size, offset) maps of two runs."""
    return max(float((x.float() - y.float()).abs().max()) for x, y in zip(a, b, strict=True))


@torch.inference_mode()
def bench_model(variant: str | GRMConfig, device: str = "cpu", runs: int = 10, batch: int = 1,
                dtype: str = "fp32", backends: Sequence[str] | None = None, warmup: int = 2,
                threads: int | None = None) -> dict:
    """Latency of ``reference`` and of each backend (default ``available_backends``), ratios to the
    reference, each backend's max abs map difference from it, and on the CPU the ``dense_floor``."""
    cfg = variant if isinstance(variant, GRMConfig) else load_variant(variant)
    backends = tuple(backends or available_backends(device))
    reference = InferenceEngine(random_model(cfg), EngineConfig("torch", device, threads=threads,
                                                                attention="reference"))
    engines = {name: InferenceEngine(random_model(cfg), EngineConfig(name, device, dtype, threads))
               for name in backends}
    for engine in engines.values():
        engine.warmup((batch,))
    template, search = example_inputs(cfg, batch, device=reference.device)
    low = {name: (template.to(e.dtype), search.to(e.dtype)) for name, e in engines.items()}
    expected = reference.maps(template, search)
    parity = {name: max_map_difference(expected, e.maps(*low[name])) for name, e in engines.items()}
    fns: dict[str, Callable[[], object]] = {"reference": lambda: reference.maps(template, search)}
    fns.update({name: (lambda e=e, inputs=low[name]: e.maps(*inputs)) for name, e in engines.items()})
    if reference.device.type == "cpu" and "torch" in engines:
        fns["dense_floor"] = dense_floor(fns["torch"])
    times = interleaved(fns, runs, warmup, synchronizer(reference.device))
    return {"variant": cfg.name, "device": str(reference.device), "batch": batch, "dtype": dtype,
            "threads": torch.get_num_threads(), "paths": with_ratios(times, "reference"),
            "max_abs_diff": parity}
