"""oneDNN linears: same products as nn.Linear, only in CPU fp32 inference, only for large weights (the
engine's torch backend switching a real model is in test_engine.py)."""

from __future__ import annotations

import pytest
import torch
from op_names import OpNames
from torch import nn

from grm_ros.model.onednn import MIN_WEIGHT, OneDNNLinear, onednn_available, use_onednn_linears


def onednn_calls(fn) -> int:
    with OpNames() as ops:
        fn()
    return ops.names.count("_linear_pointwise")


def switched(features: tuple[int, int], bias: bool = True) -> tuple[nn.Linear, OneDNNLinear]:
    torch.manual_seed(0)
    plain = nn.Linear(*features, bias=bias)
    other = nn.Linear(*features, bias=bias)
    other.load_state_dict(plain.state_dict())
    assert use_onednn_linears(other, min_weight=1) == 1
    return plain.eval(), other.eval()


@pytest.mark.parametrize("bias", [True, False])
def test_onednn_linear_computes_the_same_product(bias: bool) -> None:
    assert onednn_available()
    plain, fast = switched((96, 160), bias)
    x = torch.randn(2, 40, 96)
    with torch.inference_mode():
        expected = plain(x)
        assert onednn_calls(lambda: fast(x)) == 1
        torch.testing.assert_close(fast(x), expected, rtol=1e-5, atol=1e-5)
        sliced = torch.randn(2, 50, 96)[:, 10:]  # a view, as the last block's search rows are
        torch.testing.assert_close(fast(sliced), plain(sliced), rtol=1e-5, atol=1e-5)


def test_autograd_training_and_half_precision_take_nn_linear() -> None:
    _, fast = switched((32, 48))
    x = torch.randn(4, 32)
    assert onednn_calls(lambda: fast(x).sum().backward()) == 0 and fast.weight.grad is not None
    with torch.no_grad():
        assert onednn_calls(lambda: fast(x)) == 1
        fast.train()
        assert onednn_calls(lambda: fast(x)) == 0
        fast.eval().half()
        assert onednn_calls(lambda: fast(x.half())) == 0


def test_only_large_weights_switch_and_keys_stay() -> None:
    model = nn.Sequential(nn.Linear(1024, 1024), nn.GELU(), nn.Linear(1024, 8))
    keys = list(model.state_dict())
    assert use_onednn_linears(model) == 1
    assert type(model[0]) is OneDNNLinear and type(model[2]) is nn.Linear
    assert list(model.state_dict()) == keys
    assert 1024 * 1024 >= MIN_WEIGHT > 1024 * 8


def test_an_onnx_export_traces_the_portable_product(tmp_path) -> None:
    """The engine's torch backend may have switched a model that onnxruntime later exports."""
    import warnings

    import onnx

    _, fast = switched((96, 160))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(fast, (torch.randn(2, 96),), str(tmp_path / "linear.onnx"), dynamo=False)
    ops = {node.op_type for node in onnx.load(str(tmp_path / "linear.onnx")).graph.node}
    assert ops & {"Gemm", "MatMul"}, ops
