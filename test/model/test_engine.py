"""The inference engine: every backend here against the reference path, buckets, the ONNX cache, auto,
threads, release, and the clear errors of backends this machine cannot run."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from grm_ros.model import GRM, load_variant
from grm_ros.model.engine import (
    BUCKETS,
    Bucketed,
    EngineConfig,
    InferenceEngine,
    MapsNet,
    bucket_for,
    example_inputs,
    pad_to,
)
from grm_ros.model.engine import onnx as engine_onnx
from grm_ros.model.engine.torch_backends import GraphStep
from grm_ros.model.onednn import OneDNNLinear

PARITY = 1e-4


@pytest.fixture(autouse=True)
def restore_threads() -> None:
    """The engine's thread setting is process-wide: undo it after each test."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def twins(cfg, spread, count: int) -> list[GRM]:
    """``count`` copies of one random network (each engine owns and changes its model)."""
    torch.manual_seed(0)
    first = spread(GRM(cfg).eval())
    copies = [first]
    for _ in range(count - 1):
        other = GRM(cfg).eval()
        other.load_state_dict(first.state_dict())
        copies.append(other)
    return copies


def record_decisions(model: GRM) -> list[torch.Tensor]:
    """The class-1 column of every division layer's decision, as the attention modules return it."""
    seen: list[torch.Tensor] = []
    for block in model.backbone.blocks[1:]:
        if block.attn.divide:
            block.attn.register_forward_hook(lambda _m, _i, out: seen.append(out[1][..., 1].clone()))
    return seen


def max_diff(a, b) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


CPU_BACKENDS = ["torch"] + (["onnxruntime"] if importlib.util.find_spec("onnxruntime") else [])


@pytest.mark.parametrize("variant", ["nanostem_256", "vitb_256"])
def test_every_cpu_backend_matches_the_reference_path(variant: str, spread_division) -> None:
    """The whole network at its real size (random weights, batch 1): maps within 1e-4 of the authors'
    attention, and the torch backend takes the reference's division decisions token for token."""
    cfg = load_variant(variant)
    models = twins(cfg, spread_division, 1 + len(CPU_BACKENDS))
    reference = InferenceEngine(models[0], EngineConfig(backend="torch", attention="reference", threads=1))
    engines = {name: InferenceEngine(m, EngineConfig(backend=name, threads=1))
               for name, m in zip(CPU_BACKENDS, models[1:], strict=True)}
    ref_seen, fast_seen = record_decisions(reference.model), record_decisions(engines["torch"].model)
    template, search = example_inputs(cfg, 1, seed=1)
    expected = reference.maps(template, search)
    for name, engine in engines.items():
        assert engine.backend == name
        assert max_diff(engine.maps(template, search), expected) < PARITY, name
    assert len(ref_seen) == len(fast_seen) > 0
    for r, f in zip(ref_seen, fast_seen, strict=True):
        assert torch.equal(r, f)
    assert 0 < torch.cat(ref_seen).float().mean() < 1  # both classes occur, so the mask matters


@pytest.fixture(scope="module")
def small() -> GRM:
    torch.manual_seed(0)
    return GRM(load_variant("small_cpu")).eval()


def test_bucket_for_picks_the_smallest_bucket_that_fits() -> None:
    assert [bucket_for(k) for k in range(1, 10)] == [1, 2, 4, 4, 8, 8, 8, 8, 8]
    assert bucket_for(3, (2, 6)) == 6
    with pytest.raises(ValueError, match="at least one target"):
        bucket_for(0)
    with pytest.raises(ValueError, match="positive"):
        Bucketed(lambda size: None, buckets=(0, 2))


def test_pad_to_repeats_the_last_row() -> None:
    batch = torch.arange(6.0).reshape(3, 2)
    padded = pad_to(batch, 4)
    assert padded.shape == (4, 2) and torch.equal(padded[3], batch[2]) and torch.equal(padded[:3], batch)
    assert pad_to(batch, 3) is batch
    with pytest.raises(ValueError, match="does not fit"):
        pad_to(batch, 2)


@pytest.mark.parametrize("count", [1, 3, 10])
@torch.inference_mode()
def test_buckets_match_an_unbucketed_run_row_by_row(small: GRM, count: int) -> None:
    net = MapsNet(small, 0.0)
    seen: list[int] = []

    def build(size: int):
        def step(template: torch.Tensor, search: torch.Tensor):
            assert template.shape[0] == size  # every step sees exactly its bucket's batch
            seen.append(size)
            return net(template, search)
        return step

    bucketed = Bucketed(build)
    template, search = example_inputs(small.cfg, count, seed=count)
    out, expected = bucketed(template, search), net(template, search)
    for got, want in zip(out, expected, strict=True):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert set(bucketed.steps) == {bucket_for(len(chunk)) for chunk in template.split(BUCKETS[-1])}


def test_onnxruntime_buckets_are_built_once_and_cached_on_disk(small: GRM, monkeypatch) -> None:
    if "onnxruntime" not in CPU_BACKENDS:
        pytest.skip("onnxruntime is not installed")
    state = small.state_dict()
    reference = InferenceEngine(small, EngineConfig(backend="torch"), threshold=0.55)
    copy = GRM(small.cfg).eval()
    copy.load_state_dict(state)
    engine = InferenceEngine(copy, EngineConfig(backend="onnxruntime"), threshold=0.55)
    assert set(engine._step.steps) == set(BUCKETS)  # all at construction: no live frame waits for one
    template, search = example_inputs(small.cfg, 3, seed=2)
    assert max_diff(engine.maps(template, search), reference.maps(template, search)) < PARITY

    def no_export(*_args, **_kwargs):
        raise AssertionError("exported again despite a cached file for the same weights and tau")

    monkeypatch.setattr(engine_onnx, "export_onnx", no_export)
    again = GRM(small.cfg).eval()
    again.load_state_dict(state)
    cached = InferenceEngine(again, EngineConfig(backend="onnxruntime"), threshold=0.55)
    assert max_diff(cached.maps(template, search), engine.maps(template, search)) == 0.0
    changed = GRM(small.cfg).eval()
    changed.load_state_dict(state)
    with pytest.raises(AssertionError, match="exported again"):  # another tau is another build
        InferenceEngine(changed, EngineConfig(backend="onnxruntime"), threshold=0.3)


def test_auto_on_the_cpu_times_both_backends_and_keeps_the_faster(small: GRM) -> None:
    twin = GRM(small.cfg).eval()
    twin.load_state_dict(small.state_dict())
    reference = InferenceEngine(twin, EngineConfig(backend="torch"))
    engine = InferenceEngine(small, EngineConfig(threads=1))
    if "onnxruntime" not in CPU_BACKENDS:
        assert engine.backend == "torch" and not engine.timings
        return
    assert set(engine.timings) == {"torch", "onnxruntime"}
    assert engine.backend == min(engine.timings, key=engine.timings.__getitem__)
    # Exporting the buckets after the timed runs leaves the network in eval mode, so every bucket and the
    # torch path still compute the same maps.
    assert not engine.model.training
    for count in (1, 3):
        template, search = example_inputs(small.cfg, count, seed=count + 10)
        expected = reference.maps(template, search)
        assert max_diff(engine.maps(template, search), expected) < PARITY
        assert max_diff(engine.net(template, search), expected) < PARITY


def test_the_engine_sets_the_thread_count_and_refuses_bad_settings(small: GRM) -> None:
    torch.set_num_threads(2)
    engine = InferenceEngine(small, EngineConfig(backend="torch", threads=1))
    assert torch.get_num_threads() == 1 and engine.threads == 1
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads"):
            EngineConfig(threads=bad)
    with pytest.raises(ValueError, match="backend must be one of"):
        EngineConfig(backend="tvm")
    with pytest.raises(ValueError, match="reference attention path runs on backend torch"):
        EngineConfig(backend="onnxruntime", attention="reference")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        InferenceEngine(small, EngineConfig(backend="cuda_graphs"))
    with pytest.raises(ValueError, match="division threshold"):
        InferenceEngine(small, EngineConfig(backend="torch"), threshold=1.5)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed")
def test_tensorrt_without_the_package_says_what_is_missing(small: GRM) -> None:
    with pytest.raises(ValueError, match="backend tensorrt needs the tensorrt package"):
        InferenceEngine(small, EngineConfig(backend="tensorrt"))


def test_release_drops_the_network(small: GRM) -> None:
    engine = InferenceEngine(small, EngineConfig(backend="torch"))
    template, search = example_inputs(small.cfg, 1)
    engine.maps(template, search)
    engine.release()
    assert engine.model is None
    with pytest.raises(RuntimeError, match="after release"):
        engine.maps(template, search)


def test_a_refused_capture_runs_the_bucket_eagerly(small: GRM, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self) -> None:
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(GraphStep, "_capture", refuse)
    net = MapsNet(small, 0.0)
    step = GraphStep(net, 2)  # on the CPU buffers allocate; the capture itself is refused above
    template, search = example_inputs(small.cfg, 2, seed=5)
    with torch.inference_mode():
        out, expected = step(template, search), net(template, search)
    assert step.graph is None
    assert max_diff(out, expected) == 0.0


@torch.inference_mode()
def test_torch_backend_switches_large_linears_to_onednn_and_still_matches() -> None:
    cfg = replace(load_variant("vitb_256"), name="vitb_256_depth2", depth=2)  # real widths
    torch.manual_seed(0)
    plain = GRM(cfg).eval()
    fast = GRM(cfg).eval()
    fast.load_state_dict(plain.state_dict())
    reference = GRM(cfg).eval()
    reference.load_state_dict(plain.state_dict())
    InferenceEngine(reference, EngineConfig(backend="torch", attention="reference"))
    assert not any(isinstance(m, OneDNNLinear) for m in reference.modules())
    engine = InferenceEngine(fast, EngineConfig(backend="torch"))
    kinds = {name: type(m).__name__ for name, m in fast.backbone.blocks[1].named_modules()
             if isinstance(m, nn.Linear)}
    assert kinds == {"attn.qkv": "OneDNNLinear", "attn.proj": "Linear", "attn.divide_predict.0": "Linear",
                     "attn.divide_predict.2": "Linear", "attn.divide_predict.4": "Linear",
                     "mlp.fc1": "OneDNNLinear", "mlp.fc2": "OneDNNLinear"}
    template, search = example_inputs(cfg, 1, seed=1)
    expected = MapsNet(plain, 0.0)(template, search)
    for got, want in zip(engine.maps(template, search), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def tiny() -> GRM:
    """Small enough that inductor compiles it in seconds."""
    torch.manual_seed(0)
    cfg = replace(load_variant("small_cpu"), name="tiny", embed_dim=64, depth=3, num_heads=2,
                  head_channels=16)
    return GRM(cfg).eval()


def test_compiled_matches_the_reference_and_builds_its_one_target_bucket_up_front(tiny: GRM) -> None:
    reference_model = GRM(tiny.cfg).eval()
    reference_model.load_state_dict(tiny.state_dict())
    reference = InferenceEngine(reference_model, EngineConfig(backend="torch", attention="reference"))
    engine = InferenceEngine(tiny, EngineConfig(backend="compiled"))
    assert set(engine._step.steps) == {1}  # before any real input; other buckets compile on first use
    template, search = example_inputs(tiny.cfg, 1, seed=1)
    assert max_diff(engine.maps(template, search), reference.maps(template, search)) < PARITY


def test_export_file_is_named_by_weights_variant_and_threshold(small: GRM, tmp_path: Path) -> None:
    net = MapsNet(small, 0.0)
    weights = engine_onnx.weights_digest(net)
    keys = {engine_onnx.build_key(net, weights, 1), engine_onnx.build_key(net, weights, 2),
            engine_onnx.build_key(MapsNet(small, 0.5), weights, 1), engine_onnx.build_key(net, "other", 1)}
    assert len(keys) == 4
    assert engine_onnx.cache_dir(tmp_path) == tmp_path


def test_auto_falls_back_to_torch_when_the_export_fails(small: GRM, monkeypatch: pytest.MonkeyPatch) -> None:
    from grm_ros.model.engine import inference_engine

    def refuse(*_args, **_kwargs):
        raise RuntimeError("an op the exporter cannot trace")

    monkeypatch.setattr(inference_engine, "onnxruntime_backend", refuse)
    engine = InferenceEngine(small, EngineConfig(threads=1))
    assert engine.backend == "torch" and not engine.timings
