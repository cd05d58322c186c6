"""The pretrained NanoTrack stem and the GRM variant on its tokens (nanostem_256).

The stem module must compute what NanoTrack's released ONNX backbone computes, the packaged weights must
be exactly the released ones, and the variant must keep every GRM path working: fast against reference
with identical division decisions, ONNX export, and division skipping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from grm_ros.model import GRM, load_variant
from grm_ros.model.engine import EngineConfig, InferenceEngine
from grm_ros.model.skipping import derive_config
from grm_ros.model.stems import (
    STEM_WEIGHTS,
    NanoTrackStem,
    StemEmbed,
    load_pretrained_stem,
    stem_state_from_onnx,
)
from grm_ros.tracking.geometry import normalize_image

MAP_KEYS = ("pred_boxes", "score_map", "size_map", "offset_map")


@pytest.fixture(scope="module")
def onnx_path(shared_data: Callable[..., Path]) -> Path:
    return shared_data("baselines", "nanotrack", "backbone.onnx")


@pytest.fixture(scope="module")
def stem() -> NanoTrackStem:
    module = NanoTrackStem().eval()
    module.load_state_dict(torch.load(STEM_WEIGHTS, weights_only=True))
    return module


def test_packaged_weights_are_the_released_ones(onnx_path: Path) -> None:
    packaged = torch.load(STEM_WEIGHTS, weights_only=True)
    released = stem_state_from_onnx(onnx_path)
    assert packaged.keys() == released.keys()
    for key, value in released.items():
        assert torch.equal(packaged[key], value), key
    assert sum(v.numel() for v in released.values()) == pytest.approx(188_000, rel=0.02)


@pytest.mark.parametrize("seed", [0, 1])
def test_stem_matches_onnxruntime_on_the_released_backbone(stem: NanoTrackStem, onnx_path: Path,
                                                           seed: int) -> None:
    pixels = np.random.default_rng(seed).uniform(0, 255, (1, 3, 255, 255)).astype(np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"input": pixels})[0]
    with torch.no_grad():
        got = stem(torch.from_numpy(pixels)).numpy()
    assert got.shape == expected.shape == (1, 48, 16, 16)
    # fp32 through 24 convolutions with values up to ~30: a relative bound of 1e-5 of the range
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * float(np.abs(expected).max()) + 1e-5)


def test_embed_feeds_the_stem_raw_pixels(stem: NanoTrackStem) -> None:
    """The tracker's crops are ImageNet-normalised; the stem was trained on 0..255 RGB."""
    embed = StemEmbed(dim=16)
    load_pretrained_stem(embed)
    seen = []
    embed.stem.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    pixels = torch.randint(0, 256, (2, 3, 64, 64)).float()
    tokens = embed(normalize_image(pixels))
    torch.testing.assert_close(seen[0], pixels, rtol=0, atol=1e-3)
    assert tokens.shape == (2, 16, 16)  # (64 / 16)^2 tokens of width 16


def test_stem_variant_config_is_validated() -> None:
    cfg = load_variant("nanostem_256")
    assert cfg.stem == "nanotrack" and cfg.template_feat == 8 and cfg.search_feat == 16
    with pytest.raises(ValueError, match="patch_size must be 16"):
        replace(cfg, patch_size=8)
    with pytest.raises(ValueError, match="stem must be one of"):
        replace(cfg, stem="resnet")


@pytest.fixture
def stem_model(spread_division) -> GRM:
    torch.manual_seed(0)
    model = GRM(load_variant("nanostem_256")).eval()
    load_pretrained_stem(model.backbone.patch_embed)
    return spread_division(model)


def _crops(model: GRM, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    cfg = model.cfg
    return (torch.randn(batch, 3, cfg.template_size, cfg.template_size, generator=gen),
            torch.randn(batch, 3, cfg.search_size, cfg.search_size, generator=gen))


def test_fast_path_matches_reference_with_identical_decisions(stem_model: GRM) -> None:
    seen: list[torch.Tensor] = []
    hooks = [b.attn.register_forward_hook(lambda _m, _i, out: seen.append(out[1][..., 1].clone()))
             for b in stem_model.backbone.blocks[1:]]
    template, search = _crops(stem_model)
    try:
        with torch.no_grad():
            ref = stem_model.set_attention("reference")(template, search)
            fast = stem_model.set_attention("fast")(template, search)
    finally:
        for hook in hooks:
            hook.remove()
    for key in MAP_KEYS:
        torch.testing.assert_close(fast[key], ref[key], rtol=0, atol=1e-5)
    layers = len(stem_model.backbone.blocks) - 1
    for r, f in zip(seen[:layers], seen[layers:], strict=True):
        assert torch.equal(r, f)
    assert 0 < torch.cat(seen).float().mean() < 1


def test_stem_variant_runs_on_onnxruntime(stem_model: GRM, tmp_path: Path) -> None:
    twin = GRM(stem_model.cfg).eval()
    twin.load_state_dict(stem_model.state_dict())
    template, search = _crops(stem_model, batch=1)
    engine = InferenceEngine(twin, EngineConfig(backend="onnxruntime", cache_dir=str(tmp_path)))
    with torch.no_grad():
        expected = stem_model.set_attention("fast").maps(template, search)
    for got, want in zip(engine.maps(template, search), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-4)


def test_division_skipping_derives_a_stem_variant(stem_model: GRM) -> None:
    cfg = stem_model.cfg
    derived = GRM(derive_config(cfg, ("two_stream",) * (cfg.depth - 1))).eval()
    assert derived.cfg.stem == "nanotrack"
    state = {k: v for k, v in stem_model.state_dict().items() if ".divide_predict." not in k}
    derived.load_state_dict(state, strict=True)
    template, search = _crops(stem_model, batch=1)
    with torch.no_grad():
        ref = derived.set_attention("reference")(template, search)
        fast = derived.set_attention("fast")(template, search)
    torch.testing.assert_close(fast["score_map"], ref["score_map"], rtol=0, atol=1e-5)
