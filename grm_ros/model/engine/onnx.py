"""ONNX builds of the network: the static-shape export, its on-disk cache, and the ``onnxruntime`` backend.

The graph is the fast path at a fixed batch size (one file per bucket): static shapes, the division as a
comparison (no argsort, no one-hot), the attention mask as a comparison of group ids, tau baked in
(``ratio`` is not exported: it needs top-k and no released setting uses it). onnxruntime ran the old
default model (small_cpu) in 14.4 ms against PyTorch's 26.7 ms at 1 thread, within 1.2e-6.

Exports are cached under ``$GRM_ROS_CACHE`` (default ``~/.cache/grm_ros``), keyed by a hash of the state
dict, the variant's full config, tau, the batch size, the opset and the torch version, so a second
configure with the same weights loads the file instead of tracing again.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from grm_ros.model.engine.buckets import Bucketed, Step
from grm_ros.model.engine.network import MAP_NAMES, HeadMaps, MapsNet, example_inputs

OPSET = 17
INPUT_NAMES = ("template", "search")


def cache_dir(override: str | Path | None = None) -> Path:
    """Where built backends live: ``override``, else ``$GRM_ROS_CACHE``, else ``~/.cache/grm_ros``."""
    return Path(override or os.environ.get("GRM_ROS_CACHE") or Path.home() / ".cache" / "grm_ros")


def weights_digest(net: MapsNet) -> str:
    """Hex digest of every state-dict entry's name, dtype, shape and bytes."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in net.model.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def build_key(net: MapsNet, weights: str, batch: int) -> str:
    """Hex digest naming one build: the weights' digest, the variant's config, tau, batch, tool versions."""
    meta = {"weights": weights, "cfg": net.model.cfg.to_dict(), "threshold": net.threshold, "batch": batch,
            "opset": OPSET, "torch": torch.__version__}
    return hashlib.blake2b(json.dumps(meta, sort_keys=True, default=str).encode(), digest_size=16).hexdigest()


def export_onnx(net: MapsNet, path: str | Path, batch: int = 1) -> Path:
    """Write ``net`` for ``batch`` targets to ``path`` (fp32 CPU trace of the fast path), atomically."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    param = next(net.parameters())
    if param.device.type != "cpu" or param.dtype != torch.float32 or net.model.attention != "fast":
        raise ValueError("the ONNX export traces the fast attention path in fp32 on the CPU, got "
                         f"{net.model.attention} {param.dtype} on {param.device}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with warnings.catch_warnings(), torch.no_grad():  # the TorchScript exporter's deprecation notices
        warnings.simplefilter("ignore")
        torch.onnx.export(net, example_inputs(net.model.cfg, batch), str(tmp), input_names=list(INPUT_NAMES),
                          output_names=list(MAP_NAMES), opset_version=OPSET, dynamo=False)
    os.replace(tmp, path)
    return path


def cached_onnx(net: MapsNet, batch: int, weights: str, directory: str | Path | None = None) -> Path:
    """The export for ``batch`` (``weights``: ``weights_digest(net)``), built once per key."""
    path = cache_dir(directory) / f"{net.model.cfg.name}-b{batch}-{build_key(net, weights, batch)}.onnx"
    return path if path.is_file() else export_onnx(net, path, batch)


def ort_session(path: str | Path, threads: int):
    """An onnxruntime CPU session on ``threads`` threads whose workers sleep rather than spin when idle
    (spinning workers would steal the cores the rest of the process, or torch, runs on)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnxruntime_backend(net: MapsNet, threads: int, directory: str | Path | None = None) -> Bucketed:
    """One session per bucket, its graph exported (or read from the cache) on first use."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as err:
        raise ValueError(f"backend onnxruntime needs the onnxruntime package: {err}") from None
    if next(net.parameters()).device.type != "cpu":
        raise ValueError("backend onnxruntime runs on the CPU; use device cpu")
    weights = weights_digest(net)

    def build(size: int) -> Step:
        session = ort_session(cached_onnx(net, size, weights, directory), threads)

        def run(template: Tensor, search: Tensor) -> HeadMaps:
            feeds = {"template": np.ascontiguousarray(template.numpy()),
                     "search": np.ascontiguousarray(search.numpy())}
            return HeadMaps(*(torch.from_numpy(m) for m in session.run(list(MAP_NAMES), feeds)))

        return run

    return Bucketed(build)
