"""The whole network: attention paths agree, batches split cleanly, training reaches the division MLPs."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from grm_ros.model import GRM, GRMConfig, load_variant, param_groups

MAP_KEYS = ("pred_boxes", "score_map", "size_map", "offset_map")


def record_decisions(model: GRM) -> list[torch.Tensor]:
    """The class-1 column of every division layer's decision, as the attention modules return it."""
    seen: list[torch.Tensor] = []
    for block in model.backbone.blocks[1:]:
        block.attn.register_forward_hook(lambda _m, _i, out: seen.append(out[1][..., 1].clone()))
    return seen


def run(model: GRM, template: torch.Tensor, search: torch.Tensor, path: str, **kw) -> dict:
    with torch.no_grad():
        return model.set_attention(path)(template, search, **kw)


def test_fast_and_reference_agree_at_vitb_width(spread_division, crops) -> None:
    cfg = replace(load_variant("vitb_256"), name="vitb_256_depth3", depth=3)  # real widths and crops
    torch.manual_seed(0)
    model = spread_division(GRM(cfg).eval())
    seen = record_decisions(model)
    template, search = crops(cfg, batch=1)
    ref = run(model, template, search, "reference")
    fast = run(model, template, search, "fast")
    for key in MAP_KEYS:
        torch.testing.assert_close(fast[key], ref[key], rtol=0, atol=1e-5)
    assert fast["decisions"] == [] and ref["decisions"] == []
    ref_decisions, fast_decisions = seen[:2], seen[2:]
    for r, f in zip(ref_decisions, fast_decisions, strict=True):
        assert torch.equal(r, f)
        assert 0 < r.float().mean() < 1  # both classes occur, so the mask matters


@pytest.mark.parametrize(("path", "rows"), [("fast", "search"), ("reference", "all")])
def test_fast_path_runs_the_last_block_on_search_rows_only(tiny_cfg: GRMConfig, crops, path: str,
                                                           rows: str) -> None:
    """Only the last block drops its template rows; earlier blocks need them as keys for later ones."""
    torch.manual_seed(3)
    model = GRM(tiny_cfg).eval()
    widths = []
    for block in model.backbone.blocks:
        block.mlp.register_forward_hook(lambda _m, args, _out: widths.append(args[0].shape[1]))
    template, search = crops(tiny_cfg, batch=2)
    run(model, template, search, path)
    total = tiny_cfg.num_template_tokens + tiny_cfg.num_search_tokens
    last = tiny_cfg.num_search_tokens if rows == "search" else total
    assert widths == [total] * (tiny_cfg.depth - 1) + [last]


@pytest.mark.parametrize("threshold", [0.0, 0.4, 0.6])
def test_paths_agree_under_thresholds(tiny_cfg: GRMConfig, spread_division, crops, threshold: float) -> None:
    torch.manual_seed(1)
    model = spread_division(GRM(tiny_cfg).eval())
    template, search = crops(tiny_cfg, batch=2)
    ref = run(model, template, search, "reference", threshold=threshold)
    fast = run(model, template, search, "fast", threshold=threshold)
    for key in MAP_KEYS:
        torch.testing.assert_close(fast[key], ref[key], rtol=0, atol=1e-5)


def test_threshold_changes_the_division(tiny_cfg: GRMConfig, spread_division, crops) -> None:
    torch.manual_seed(2)
    model = spread_division(GRM(tiny_cfg).eval())
    seen = record_decisions(model)
    template, search = crops(tiny_cfg, batch=1)
    fractions = []
    for threshold in (0.2, 0.8):
        seen.clear()
        run(model, template, search, "fast", threshold=threshold)
        fractions.append(torch.cat(seen).float().mean().item())
    assert fractions[0] < fractions[1]  # a higher tau lets more tokens interact


@pytest.mark.parametrize("path", ["fast", "reference"])
def test_batch_of_four_equals_four_single_runs(tiny_cfg: GRMConfig, spread_division, crops,
                                               path: str) -> None:
    torch.manual_seed(3)
    model = spread_division(GRM(tiny_cfg).eval())
    template, search = crops(tiny_cfg, batch=4)
    batched = run(model, template, search, path)
    for i in range(4):
        single = run(model, template[i:i + 1], search[i:i + 1], path)
        for key in MAP_KEYS:
            torch.testing.assert_close(batched[key][i:i + 1], single[key], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(batched["score_map"][0], batched["score_map"][1])


@pytest.mark.parametrize("path", ["fast", "reference"])
def test_training_step_updates_division_mlps(tiny_cfg: GRMConfig, crops, path: str) -> None:
    torch.manual_seed(4)
    model = GRM(tiny_cfg, attention=path).train()
    optimizer = torch.optim.AdamW(param_groups(model, lr=1e-3))
    before = {n: p.detach().clone() for n, p in model.named_parameters() if ".divide_predict." in n}
    template, search = crops(tiny_cfg, batch=2)
    out = model(template, search)
    assert out["decisions"].shape == (2, tiny_cfg.depth - 1)
    steps = out["decisions"] * tiny_cfg.num_search_tokens
    assert torch.equal(steps, steps.round()) and (out["decisions"] <= 1).all()
    loss = out["pred_boxes"].square().sum() + out["score_map"].mean() + out["size_map"].mean()
    loss.backward()
    for block in model.backbone.blocks[1:]:
        assert block.attn.divide_predict[0].weight.grad.abs().sum() > 0
    optimizer.step()
    changed = [n for n, p in model.named_parameters() if n in before and not torch.equal(p, before[n])]
    assert sorted(changed) == sorted(before)


def test_half_precision_forward(tiny_cfg: GRMConfig, crops) -> None:
    model = GRM(tiny_cfg).eval().to(torch.bfloat16)
    template, search = (t.to(torch.bfloat16) for t in crops(tiny_cfg, batch=2))
    for path in ("fast", "reference"):
        out = run(model, template, search, path)
        assert out["score_map"].dtype == torch.bfloat16
        assert all(torch.isfinite(out[k].float()).all() for k in MAP_KEYS)


def test_output_shapes_and_ranges(crops) -> None:
    cfg = load_variant("small_cpu")
    model = GRM(cfg).eval()
    out = run(model, *crops(cfg, batch=3), "fast")
    side = cfg.search_feat
    assert out["pred_boxes"].shape == (3, 1, 4)
    assert out["score_map"].shape == (3, 1, side, side)
    assert out["size_map"].shape == out["offset_map"].shape == (3, 2, side, side)
    assert out["score_map"].min() >= 1e-4 and out["score_map"].max() <= 1 - 1e-4


def test_bad_inputs_are_named(tiny_cfg: GRMConfig, crops) -> None:
    model = GRM(tiny_cfg).eval()
    template, search = crops(tiny_cfg, batch=1)
    with pytest.raises(ValueError, match="search must be"):
        model(template, search[..., :32])
    with pytest.raises(ValueError, match="template batch"):
        model(template.expand(2, -1, -1, -1), search)
    with pytest.raises(ValueError, match="threshold"):
        model(template, search, threshold=1.5)
    with pytest.raises(ValueError, match="unknown attention path"):
        model.set_attention("flash")
    model.attention = "reference"
    assert model.attention == "reference"
