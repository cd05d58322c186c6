"""``InferenceEngine``: the one owner of a loaded network at inference time.

It takes the model and puts it on its device and dtype, picks the attention path and the backend once, at
construction (as timm's Attention picks its fused kernel when built), sets the torch thread count, bakes
in the division threshold tau, and answers ``maps(template, search) -> HeadMaps``. Nothing else moves,
switches or wraps the model afterwards; ``release()`` drops it (and its GPU memory).

Backends: ``torch`` (eager; oneDNN linears on the CPU), ``compiled`` (torch.compile), ``cuda_graphs``
(a CUDA graph per bucket of 1, 2, 4, 8 targets), ``onnxruntime`` (CPU, a cached static-shape export per
bucket), ``tensorrt`` (CUDA, where the package imports). ``auto``: on CUDA ``cuda_graphs``; on the CPU
it measures rather than assumes: ``AUTO_RUNS`` interleaved batch-1 forwards of ``torch`` and
``onnxruntime`` (when that imports, fp32 and the fast path) at construction, and keeps the faster median.

Every bucket of ``onnxruntime``, ``cuda_graphs`` and ``tensorrt`` is built at construction (cached exports
load in a fraction of a second), so no live frame with a new target count waits for a build; ``compiled``
builds the one-target bucket then and the others on first use (a minute each on 2 CPU cores).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from grm_ros.model.division import ATTENTION_PATHS
from grm_ros.model.engine.buckets import BUCKETS, Step
from grm_ros.model.engine.network import HeadMaps, MapsNet, example_inputs
from grm_ros.model.engine.onnx import onnxruntime_backend
from grm_ros.model.engine.tensorrt import tensorrt_backend
from grm_ros.model.engine.torch_backends import compiled_backend, cuda_graphs_backend, eager_backend
from grm_ros.model.grm import GRM

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "compiled", "cuda_graphs", "onnxruntime", "tensorrt")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
AUTO_RUNS = 5
BUILT_UP_FRONT = ("onnxruntime", "cuda_graphs", "tensorrt")  # every bucket at construction


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch device, with a clear error when CUDA is asked for but this torch cannot use it."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {str(device)!r} requested but CUDA is not available (torch {torch.__version__}, "
            f"built with CUDA {torch.version.cuda}); use device='cpu'"
        )
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {str(device)!r}: use 'cpu' or 'cuda[:N]'")
    return dev


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """fp32 everywhere; fp16 / bf16 only on CUDA, where they are fast and well supported."""
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}: choose one of {sorted(DTYPES)}")
        dtype = DTYPES[dtype]
    if dtype not in DTYPES.values():
        raise ValueError(f"unsupported dtype {dtype}: choose one of {sorted(DTYPES)}")
    if dtype != torch.float32 and device.type != "cuda":
        raise ValueError(f"dtype {dtype} needs a CUDA device; on {device} use fp32")
    return dtype


@dataclass(frozen=True)
class EngineConfig:
    """How the network runs. threads: torch (and onnxruntime) CPU threads, a process-wide setting; None
    leaves torch's choice. attention: "fast", or "reference" (the authors' masked softmax, eager ``torch``
    backend only: the parity baseline). cache_dir: where exports are kept (default ``$GRM_ROS_CACHE`` or
    ``~/.cache/grm_ros``)."""

    backend: str = "auto"
    device: str = "cpu"
    dtype: str = "fp32"
    threads: int | None = None
    attention: str = "fast"
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"EngineConfig.backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.attention not in ATTENTION_PATHS:
            raise ValueError(f"EngineConfig.attention must be one of {ATTENTION_PATHS}, "
                             f"got {self.attention!r}")
        if self.attention == "reference" and self.backend != "torch":
            raise ValueError("the reference attention path runs on backend torch only")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ValueError(f"EngineConfig.threads must be a positive integer or None, got {self.threads!r}")


def cpu_twin(model: GRM) -> GRM:
    """A separate fp32 CPU network with ``model``'s weights (the engine changes the one it owns)."""
    twin = GRM(model.cfg).eval()
    twin.load_state_dict({k: v.detach().cpu().float() for k, v in model.state_dict().items()})
    return twin


def _call_ms(step: Step, template: Tensor, search: Tensor) -> float:
    start = time.perf_counter()
    step(template, search)
    return (time.perf_counter() - start) * 1e3


def faster_cpu_backend(candidates: dict[str, Step], template: Tensor, search: Tensor,
                       runs: int = AUTO_RUNS) -> tuple[str, dict[str, float]]:
    """The candidate with the lowest median of ``runs`` interleaved timed calls (after one untimed call
    each), and every candidate's median in ms."""
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for step in candidates.values():
        step(template, search)
    for _ in range(runs):  # interleaved, so all see the same machine load
        for name, step in candidates.items():
            times[name].append(_call_ms(step, template, search))
    medians = {name: float(np.median(t)) for name, t in times.items()}
    return min(medians, key=medians.__getitem__), medians


class InferenceEngine:
    """A GRM ready for inference: ``maps(template, search)`` for K targets (normalised crops on
    ``device`` in ``dtype``), tau fixed (``threshold``, default the variant's DEFAULT).

    The engine takes ownership of ``model``: it moves it, may switch its linear layers to oneDNN, and
    freezes it into compiled or exported code; callers keep no other handle to run it.
    """

    def __init__(self, model: GRM, config: EngineConfig | None = None,
                 threshold: float | None = None) -> None:
        self.config = config = config or EngineConfig()
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        self.cfg = model.cfg
        self.threshold = self.cfg.threshold_for(None) if threshold is None else float(threshold)
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"division threshold must be in [0, 1], got {self.threshold}")
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        self.threads = torch.get_num_threads()
        cpu_copy = None
        if config.backend == "tensorrt":  # exported from fp32 on the CPU, before the move
            cpu_copy = MapsNet(cpu_twin(model), self.threshold)
        model = model.to(device=self.device, dtype=self.dtype).eval().set_attention(config.attention)
        self.model: GRM | None = model
        self.net = MapsNet(model, self.threshold)
        self.timings: dict[str, float] = {}
        self.backend, self._step = self._build(config.backend, cpu_copy)
        if self.backend in BUILT_UP_FRONT:
            self.warmup(BUCKETS)
        log.info("GRM %s on %s (%s, %s attention, tau %g): backend %s%s", self.cfg.name, self.device,
                 config.dtype, config.attention, self.threshold, self.backend,
                 f" (measured ms {self.timings})" if self.timings else "")

    def _build(self, backend: str, cpu_copy: MapsNet | None) -> tuple[str, Step]:
        net, config = self.net, self.config
        if backend == "auto":
            return self._auto()
        if backend == "onnxruntime" and (self.dtype != torch.float32 or config.attention != "fast"):
            raise ValueError("backend onnxruntime runs the fast path in fp32")
        builders = {
            "torch": lambda: eager_backend(net),
            "compiled": lambda: compiled_backend(net),
            "cuda_graphs": lambda: cuda_graphs_backend(net),
            "onnxruntime": lambda: onnxruntime_backend(net, self.threads, config.cache_dir),
            "tensorrt": lambda: tensorrt_backend(net, cpu_copy, config.cache_dir),
        }
        step = builders[backend]()
        warmup = getattr(step, "warmup", None)
        if warmup is not None:  # the one-target bucket before the first frame
            with torch.inference_mode():
                warmup()
        return backend, step

    def _auto(self) -> tuple[str, Step]:
        if self.device.type == "cuda":
            return self._build("cuda_graphs", None)
        if self.dtype != torch.float32 or self.config.attention != "fast":
            return self._build("torch", None)
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return self._build("torch", None)
        try:
            exported = self._build("onnxruntime", None)
        except Exception as err:  # a network the exporter cannot trace still runs, on torch
            log.warning("auto: onnxruntime build failed (%s: %s); using torch", type(err).__name__, err)
            return self._build("torch", None)
        candidates = dict((exported, self._build("torch", None)))
        template, search = example_inputs(self.cfg, 1)
        with torch.inference_mode():
            name, self.timings = faster_cpu_backend(candidates, template, search)
        return name, candidates[name]

    @torch.inference_mode()
    def maps(self, template: Tensor, search: Tensor) -> HeadMaps:
        """The head's maps for each (template, search) pair; a CUDA graph's are valid until the next call."""
        if self.model is None:
            raise RuntimeError("InferenceEngine.maps after release()")
        return self._step(template, search)

    def warmup(self, counts: tuple[int, ...]) -> None:
        """Build the buckets for these target counts now (no-op for backends without buckets)."""
        warmup = getattr(self._step, "warmup", None)
        if warmup is not None:
            with torch.inference_mode():
                warmup(counts)

    def release(self) -> None:
        """Drop the network and every build of it; the engine answers no more calls."""
        self.model = self.net = self._step = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
