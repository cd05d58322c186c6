"""Appendix C.3: continuous attention scaling by the division probability (token and region level)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from grm_ros.model import GRM, GRMConfig, load_variant, param_groups
from grm_ros.model.division import (
    SCALING_FLOOR,
    fast_scaled_attention,
    interaction_probability,
    reference_scaled_attention,
    two_stream_attention,
)
from grm_ros.model.skipping import DivisionRecorder

MAP_KEYS = ("pred_boxes", "score_map", "size_map", "offset_map")
SCALINGS = ("token", "region")


def scaled(cfg: GRMConfig, scaling: str) -> GRMConfig:
    return replace(cfg, name=f"{cfg.name}_{scaling}", attention_scaling=scaling, scaling_window=2)


def qkv(batch: int, nz: int, nx: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, 2, nz + nx, 8, generator=gen) for _ in range(3))


def test_probability_one_is_plain_attention_and_zero_is_two_stream() -> None:
    q, k, v = qkv(2, 4, 16)
    plain = F.scaled_dot_product_attention(q, k, v)
    for attend in (reference_scaled_attention, fast_scaled_attention):
        torch.testing.assert_close(attend(q, k, v, torch.ones(2, 16)), plain, rtol=0, atol=1e-5)
    torch.testing.assert_close(reference_scaled_attention(q, k, v, torch.zeros(2, 16)),
                               two_stream_attention(q, k, v, 16), rtol=0, atol=1e-5)
    # The fast path's floor leaves each cross pair at most SCALING_FLOOR of its unscaled weight.
    torch.testing.assert_close(fast_scaled_attention(q, k, v, torch.zeros(2, 16)),
                               two_stream_attention(q, k, v, 16), rtol=0, atol=100 * SCALING_FLOOR)


def test_scaling_weighs_only_template_search_pairs_by_the_search_token() -> None:
    q, k, _ = qkv(1, 2, 4)
    p = torch.tensor([[0.5, 0.1, 1.0, 0.25]])
    v_eye = torch.eye(6).expand(1, 2, 6, 6)  # output rows are then the attention weights themselves
    weights = reference_scaled_attention(q, k, v_eye, p)
    raw = ((q @ k.transpose(-2, -1)) * 8**-0.5).exp()
    scale = torch.ones(6, 6)
    scale[:2, 2:] = p  # template query, search key j: p_j
    scale[2:, :2] = p[0, :, None]  # search query j, template key: p_j
    expected = raw * scale
    torch.testing.assert_close(weights, expected / expected.sum(-1, keepdim=True), rtol=1e-5, atol=1e-6)


def test_region_probability_is_the_window_mean() -> None:
    log_p1 = torch.rand(2, 16).clamp(min=1e-3).log()
    log_probs = torch.stack(((1 - log_p1.exp()).clamp(min=1e-6).log(), log_p1), dim=-1)
    token = interaction_probability(log_probs, "token", 2)
    region = interaction_probability(log_probs, "region", 2).reshape(2, 4, 4)
    windows = token.reshape(2, 2, 2, 2, 2).mean(dim=(2, 4))  # (B, row window, col window)
    torch.testing.assert_close(region, windows.repeat_interleave(2, 1).repeat_interleave(2, 2))
    with pytest.raises(ValueError, match="divisible by 3"):
        interaction_probability(log_probs, "region", 3)


@pytest.mark.parametrize("scaling", SCALINGS)
def test_fast_path_matches_reference(tiny_cfg: GRMConfig, spread_division, crops, scaling: str) -> None:
    cfg = scaled(tiny_cfg, scaling)
    torch.manual_seed(0)
    model = spread_division(GRM(cfg).eval(), gain=1.5)
    seen: list[torch.Tensor] = []
    for block in model.backbone.blocks[1:]:
        block.attn.register_forward_hook(lambda _m, _i, out: seen.append(out[1].clone()))
    template, search = crops(cfg, batch=3)
    with torch.no_grad():
        ref = model.set_attention("reference")(template, search)
        fast = model.set_attention("fast")(template, search)
    for key in MAP_KEYS:
        torch.testing.assert_close(fast[key], ref[key], rtol=0, atol=1e-4)
    assert max((fast[k] - ref[k]).abs().max().item() for k in MAP_KEYS) > 0  # two computations, not one
    side = cfg.search_feat
    for ref_p, fast_p in zip(seen[:2], seen[2:], strict=True):  # hooks see (1 - p, p) per search token
        assert ref_p.shape == (3, cfg.num_search_tokens, 2)
        torch.testing.assert_close(ref_p.sum(-1), torch.ones(3, cfg.num_search_tokens))
        torch.testing.assert_close(fast_p, ref_p, rtol=0, atol=1e-6)
        p = ref_p[..., 1]
        assert 0.05 < p.mean() < 0.95 and p.std() > 0.05  # spread, not saturated
        if scaling == "region":
            grid = p.reshape(3, side // 2, 2, side // 2, 2)
            assert torch.equal(grid, grid[:, :, :1, :, :1].expand_as(grid))


@pytest.mark.parametrize("scaling", SCALINGS)
def test_training_is_deterministic_and_reaches_the_division_mlps(tiny_cfg: GRMConfig, crops,
                                                                 scaling: str) -> None:
    cfg = replace(scaled(tiny_cfg, scaling), drop_path=0.0)
    torch.manual_seed(4)
    model = GRM(cfg, attention="reference").train()
    template, search = crops(cfg, batch=2)
    first, second = model(template, search), model(template, search)
    assert torch.equal(first["score_map"], second["score_map"])  # no Gumbel sampling
    trained_tokens = model.backbone(template, search, "reference", 0.0, 0.0)[0]
    with torch.no_grad():  # the head's BatchNorm differs between modes, the backbone does not
        eval_tokens = model.eval().backbone(template, search, "reference", 0.0, 0.0)[0]
    torch.testing.assert_close(eval_tokens, trained_tokens, rtol=0, atol=1e-6)
    model.train()
    assert sorted(first["division_log_probs"]) == [1, 2]  # C.1 can supervise C.3 layers too
    assert first["decisions"].shape == (2, cfg.depth - 1) and (first["decisions"] <= 1).all()

    optimizer = torch.optim.AdamW(param_groups(model, lr=1e-3))
    before = {n: p.detach().clone() for n, p in model.named_parameters() if ".divide_predict." in n}
    for step in range(3):
        out = model(template, search)
        loss = out["pred_boxes"].square().sum() + out["score_map"].mean() + out["size_map"].mean()
        optimizer.zero_grad()
        loss.backward()
        if step == 0:
            for block in model.backbone.blocks[1:]:
                assert block.attn.divide_predict[0].weight.grad.abs().sum() > 0
        optimizer.step()
    assert all(not torch.equal(p, before[n]) for n, p in model.named_parameters() if n in before)


def test_half_precision_fast_path_builds_the_bias_in_the_query_dtype(tiny_cfg: GRMConfig, crops) -> None:
    model = GRM(scaled(tiny_cfg, "token")).eval()
    template, search = crops(tiny_cfg, batch=2)
    with torch.no_grad():
        full = model(template, search)["score_map"]
        half = model.to(torch.bfloat16)(template.bfloat16(), search.bfloat16())["score_map"]
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), full, rtol=0, atol=3e-2)


@pytest.mark.parametrize("scaling", SCALINGS)
def test_onnx_export_matches_pytorch(tiny_cfg: GRMConfig, spread_division, tmp_path, scaling: str) -> None:
    ort = pytest.importorskip("onnxruntime")
    from grm_ros.model.engine.network import MapsNet, example_inputs
    from grm_ros.model.engine.onnx import export_onnx

    torch.manual_seed(1)
    net = MapsNet(spread_division(GRM(scaled(tiny_cfg, scaling)), gain=1.5), 0.0).eval()
    path = export_onnx(net, tmp_path / f"{scaling}.onnx", batch=2)
    template, search = example_inputs(net.model.cfg, batch=2, seed=5)
    with torch.no_grad():
        expected = [m.numpy() for m in net(template, search)]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"template": template.numpy(), "search": search.numpy()})
    diff = max(float(abs(e - g).max()) for e, g in zip(expected, got, strict=True))
    assert diff < 1e-4, diff


def test_bad_scaling_settings_are_refused(tiny_cfg: GRMConfig, crops) -> None:
    with pytest.raises(ValueError, match="attention_scaling must be one of"):
        replace(tiny_cfg, attention_scaling="soft")
    with pytest.raises(ValueError, match="scaling_window must be a positive integer"):
        replace(tiny_cfg, attention_scaling="region", scaling_window=0)
    with pytest.raises(ValueError, match="must divide the 4x4 search token grid"):
        replace(tiny_cfg, attention_scaling="region", scaling_window=3)
    with pytest.raises(ValueError, match=r"thresholds .* must all be 0"):
        replace(tiny_cfg, attention_scaling="token", thresholds={"DEFAULT": 0.0, "LASOT": 0.4})
    assert replace(tiny_cfg, scaling_window=3).scaling_window == 3  # irrelevant without region scaling
    model = GRM(scaled(tiny_cfg, "token")).eval()
    with pytest.raises(ValueError, match="threshold and ratio must be 0"):
        model(*crops(tiny_cfg, batch=1), threshold=0.5)
    with pytest.raises(ValueError, match="needs discrete divisions"), DivisionRecorder().attach(model):
        pass


def test_packaged_c3_variants_differ_from_the_default_only_in_the_scaling() -> None:
    base = load_variant("nanostem_256").to_dict()
    for name, scaling in (("nanostem_256_c3token", "token"), ("nanostem_256_c3region", "region")):
        cfg = load_variant(name)
        assert cfg.attention_scaling == scaling and cfg.weights is None
        changed = {k for k, v in cfg.to_dict().items() if base[k] != v}
        assert changed <= {"name", "attention_scaling", "scaling_window", "weights"}
    assert GRM(load_variant("nanostem_256_c3token")).state_dict().keys() == GRM(
        load_variant("nanostem_256")).state_dict().keys()  # same parameters, so the same loaders
