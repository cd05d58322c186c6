"""The ``tensorrt`` backend: the cached ONNX export of each bucket built into a TensorRT engine (fp32 or
fp16 by the engine's dtype), itself cached beside the ONNX file per GPU and TensorRT version.

Written against the TensorRT 10 Python API and checked here for its import and argument errors only:
no GPU or ``tensorrt`` package was available where it was written, so it has never built an engine.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from grm_ros.model.engine.buckets import Bucketed, Step
from grm_ros.model.engine.network import MAP_NAMES, HeadMaps, MapsNet
from grm_ros.model.engine.onnx import INPUT_NAMES, cached_onnx, weights_digest


def _import_tensorrt():
    try:
        import tensorrt
    except ImportError as err:
        raise ValueError(f"backend tensorrt needs the tensorrt package (pip install tensorrt, with a CUDA "
                         f"GPU): {err}") from None
    return tensorrt


def _plan(trt, onnx_path: Path, fp16: bool) -> bytes:
    suffix = f"-{torch.cuda.get_device_name().replace(' ', '_')}-trt{trt.__version__}{'-fp16' * fp16}.plan"
    plan_path = onnx_path.with_name(onnx_path.stem + suffix)
    if plan_path.is_file():
        return plan_path.read_bytes()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT could not build an engine from {onnx_path}")
    plan_path.write_bytes(bytes(plan))
    return bytes(plan)


def tensorrt_backend(net: MapsNet, cpu_copy: MapsNet, directory: str | Path | None = None) -> Bucketed:
    """``net`` on CUDA (for dtype and device); ``cpu_copy`` the same network in fp32 on the CPU to export."""
    trt = _import_tensorrt()
    param = next(net.parameters())
    if param.device.type != "cuda":
        raise ValueError("backend tensorrt needs a CUDA device")
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    weights = weights_digest(cpu_copy)

    def build(size: int) -> Step:
        engine = runtime.deserialize_cuda_engine(_plan(trt, cached_onnx(cpu_copy, size, weights, directory),
                                                       param.dtype == torch.float16))
        context = engine.create_execution_context()
        side = net.model.cfg.search_feat
        outputs = HeadMaps(*(torch.empty(size, channels, side, side, device=param.device, dtype=torch.float32)
                             for channels in (1, 2, 2)))
        for name, tensor in zip(MAP_NAMES, outputs, strict=True):
            context.set_tensor_address(name, tensor.data_ptr())

        def run(template: Tensor, search: Tensor) -> HeadMaps:
            inputs = [t.float().contiguous() for t in (template, search)]
            for name, tensor in zip(INPUT_NAMES, inputs, strict=True):
                context.set_tensor_address(name, tensor.data_ptr())
            if not context.execute_async_v3(torch.cuda.current_stream().cuda_stream):
                raise RuntimeError("TensorRT execution failed")
            return HeadMaps(*(m.to(param.dtype) for m in outputs))

        return run

    return Bucketed(build)
