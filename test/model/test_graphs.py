"""The per-frame step runner on the CPU: bucket choice, padding, slicing back, chunking, eager parity."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from grm_ros.model import GRM, load_variant
from grm_ros.model.graphs import BUCKETS, StaticStep, StepRunner, bucket_for, pad_to
from grm_ros.tracking.tracker import Tracker, TrackerConfig


@pytest.fixture(scope="module")
def model() -> GRM:
    torch.manual_seed(0)
    return GRM(load_variant("small_cpu")).eval()


def inputs(model: GRM, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(count)
    cfg = model.cfg
    return (torch.randn(count, 3, cfg.template_size, cfg.template_size, generator=gen),
            torch.randn(count, 3, cfg.search_size, cfg.search_size, generator=gen))


def test_bucket_for_picks_the_smallest_bucket_that_fits() -> None:
    assert [bucket_for(k) for k in range(1, 10)] == [1, 2, 4, 4, 8, 8, 8, 8, 8]
    assert bucket_for(3, (2, 6)) == 6
    with pytest.raises(ValueError, match="at least one target"):
        bucket_for(0)


def test_pad_to_repeats_the_last_row() -> None:
    batch = torch.arange(6.0).reshape(3, 2)
    padded = pad_to(batch, 4)
    assert padded.shape == (4, 2) and torch.equal(padded[3], batch[2]) and torch.equal(padded[:3], batch)
    assert pad_to(batch, 3) is batch
    with pytest.raises(ValueError, match="does not fit"):
        pad_to(batch, 2)


@pytest.mark.parametrize("count", [1, 3, 10])
@torch.inference_mode()
def test_static_buckets_match_eager_row_by_row(model: GRM, count: int) -> None:
    template, search = inputs(model, count)
    eager = StepRunner(model)(template, search)
    static = StepRunner(model, static=True)
    out = static(template, search)
    for key, value in eager.items():
        assert out[key].shape == value.shape
        torch.testing.assert_close(out[key], value, rtol=1e-5, atol=1e-5)
    used = {bucket_for(len(chunk)) for chunk in template.split(BUCKETS[-1])}
    assert set(static._steps) == used


def test_capture_needs_cuda(model: GRM) -> None:
    assert not StepRunner(model).capture
    with pytest.raises(ValueError, match="CUDA"):
        StepRunner(model, capture=True)
    with pytest.raises(ValueError, match="positive"):
        StepRunner(model, buckets=(0, 2))


def test_a_failed_capture_falls_back_to_eager(model: GRM, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self) -> None:
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(StaticStep, "_capture", refuse)
    runner = StepRunner(model)
    runner.capture = runner.static = True  # as on CUDA; the capture itself is refused above
    template, search = inputs(model, 2)
    with torch.inference_mode():
        out = runner(template, search)
        expected = model(template, search)["score_map"]
    assert runner._steps[2].graph is None
    torch.testing.assert_close(out["score_map"], expected, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def tiny() -> GRM:
    """Small enough that inductor compiles it in seconds."""
    torch.manual_seed(0)
    cfg = replace(load_variant("small_cpu"), name="tiny", embed_dim=64, depth=3, num_heads=2,
                  head_channels=16)
    return GRM(cfg).eval()


def test_compiled_buckets_match_eager_and_compile_before_the_first_frame(tiny: GRM) -> None:
    runner = StepRunner(tiny, compile=True)
    assert runner.static and runner.compiled is not None
    runner.warmup((1, 3))  # the buckets for 1 and 3 targets exist before any real input
    assert set(runner._steps) == {1, 4}
    for count in (1, 3):
        template, search = inputs(tiny, count)
        with torch.inference_mode():
            out = runner(template, search)
            eager = tiny(template, search)
        for key, value in out.items():
            torch.testing.assert_close(value, eager[key], rtol=1e-4, atol=1e-4)


def test_tracker_with_compile_builds_its_one_target_bucket_up_front(tiny: GRM) -> None:
    tracker = Tracker(tiny, TrackerConfig(compile=True))
    assert tracker.step.compiled is not None and set(tracker.step._steps) == {1}
