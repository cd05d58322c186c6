"""ONNX export of the fast path as the engine builds it: static shapes, no argsort/one-hot, and grm-export
copying that build and checking it against PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch

from grm_ros.model import GRM, load_variant
from grm_ros.model.engine import MAP_NAMES, MapsNet
from grm_ros.model.engine.onnx import export_onnx
from grm_ros.tools.export import main


@pytest.fixture(scope="module")
def model() -> GRM:
    torch.manual_seed(0)
    return GRM(load_variant("small_cpu")).eval()


@pytest.mark.parametrize(("batch", "threshold"), [(1, 0.0), (2, 0.55)])
def test_onnx_graph_has_static_shapes_and_no_data_dependent_ops(model: GRM, tmp_path: Path, batch: int,
                                                                threshold: float) -> None:
    path = export_onnx(MapsNet(model, threshold), tmp_path / "grm.onnx", batch=batch)
    graph = onnx.load(str(path)).graph
    ops = {node.op_type for node in graph.node}
    assert not ops & {"ArgSort", "OneHot", "TopK", "Loop", "If"}, ops
    assert [o.name for o in graph.output] == list(MAP_NAMES)
    for value in (*graph.input, *graph.output):  # every dimension is a number: static shapes
        assert all(d.HasField("dim_value") for d in value.type.tensor_type.shape.dim), value.name
    assert graph.input[1].type.tensor_type.shape.dim[0].dim_value == batch


def test_export_refuses_what_it_cannot_trace(model: GRM, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch"):
        export_onnx(MapsNet(model, 0.0), tmp_path / "x.onnx", batch=0)
    reference = GRM(model.cfg).eval().set_attention("reference")
    with pytest.raises(ValueError, match="fast attention path"):
        export_onnx(MapsNet(reference, 0.0), tmp_path / "x.onnx")


def test_export_cli(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli.onnx"
    assert main(["--variant", "small_cpu", "--allow-random", "--out", str(out), "--runs", "1",
                 "--threads", "1", "--batch", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert out.is_file() and report["onnx"] == str(out) and report["max_abs_diff_all"] < 1e-4
    assert report["torch_cpu_ms"] > 0 and report["onnxruntime_cpu_ms"] > 0
    assert onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
