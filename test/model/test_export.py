"""ONNX export of the fast path: static shapes, no argsort/one-hot, onnxruntime agrees with PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch

from grm_ros.model import GRM, load_variant
from grm_ros.model.export import OUTPUT_NAMES, check_onnx, export_onnx, main


@pytest.fixture(scope="module")
def model() -> GRM:
    torch.manual_seed(0)
    return GRM(load_variant("small_cpu")).eval()


@pytest.mark.parametrize(("batch", "threshold"), [(1, 0.0), (2, 0.55)])
def test_onnx_matches_pytorch(model: GRM, tmp_path: Path, batch: int, threshold: float) -> None:
    path = export_onnx(model, tmp_path / "grm.onnx", batch=batch, threshold=threshold)
    graph = onnx.load(str(path)).graph
    ops = {node.op_type for node in graph.node}
    assert not ops & {"ArgSort", "OneHot", "TopK", "Loop", "If"}, ops
    assert [o.name for o in graph.output] == list(OUTPUT_NAMES)
    for value in (*graph.input, *graph.output):  # every dimension is a number: static shapes
        assert all(d.HasField("dim_value") for d in value.type.tensor_type.shape.dim), value.name
    assert graph.input[1].type.tensor_type.shape.dim[0].dim_value == batch
    report = check_onnx(model, path, batch=batch, threshold=threshold, runs=1)
    assert report["max_abs_diff_all"] < 1e-4, report
    assert report["torch_cpu_ms"] > 0 and report["onnxruntime_cpu_ms"] > 0


def test_export_cli(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli.onnx"
    assert main(["--variant", "small_cpu", "--allow-random", "--out", str(out), "--runs", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert out.is_file() and report["onnx"] == str(out) and report["max_abs_diff_all"] < 1e-4
    with pytest.raises(ValueError, match="batch"):
        export_onnx(GRM(load_variant("small_cpu")), tmp_path / "x.onnx", batch=0)
