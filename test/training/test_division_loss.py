"""Appendix C.1: the division MLPs supervised by the GT box (target map, loss, wiring into training)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from grm_ros.model import GRM, load_model, load_variant, param_groups, read_checkpoint
from grm_ros.training import cli
from grm_ros.training.losses import LossWeights, division_loss, division_target, tracking_loss
from grm_ros.training.recipe import Recipe, Stage, run_recipe
from grm_ros.training.recipes import get_recipe
from grm_ros.training.sampler import PairDataset
from grm_ros.training.trainer import Trainer, TrainSettings


def _confident(target: torch.Tensor, margin: float) -> torch.Tensor:
    """(B, Nx, 2) log-probabilities putting probability sigmoid(margin) on class ``target``."""
    logits = torch.stack((1 - target.float(), target.float()), dim=-1) * margin
    return logits.log_softmax(dim=-1)


def test_target_map_marks_the_cells_the_box_touches() -> None:
    # 4x4 grid, cells 0.25 wide; box x 0.3..0.55, y 0.0..0.2 touches columns 1-2 of row 0.
    target = division_target(torch.tensor([[0.3, 0.0, 0.25, 0.2]]), side=4).reshape(4, 4)
    expected = torch.zeros(4, 4, dtype=torch.long)
    expected[0, 1:3] = 1
    assert torch.equal(target, expected)
    # A box ending exactly on a cell edge does not claim the next cell; one sticking out is clipped.
    edge = division_target(torch.tensor([[0.5, 0.5, 0.25, 0.75]]), side=4).reshape(4, 4)
    expected = torch.zeros(4, 4, dtype=torch.long)
    expected[2:, 2] = 1
    assert torch.equal(edge, expected)


def test_loss_is_zero_for_a_perfect_division_and_grows_when_it_is_wrong() -> None:
    boxes = torch.tensor([[0.3, 0.0, 0.25, 0.2], [0.1, 0.6, 0.5, 0.3]])
    target = division_target(boxes, side=4)
    perfect = {1: _confident(target, 40.0), 2: _confident(target, 40.0)}
    assert division_loss(perfect, boxes).item() == pytest.approx(0.0, abs=1e-6)
    unsure = division_loss({1: _confident(target, 1.0), 2: _confident(target, 1.0)}, boxes).item()
    wrong = division_loss({1: _confident(1 - target, 1.0), 2: _confident(target, 1.0)}, boxes).item()
    assert 0 < unsure < wrong
    assert division_loss({1: _confident(1 - target, 1.0), 2: _confident(target, 40.0)}, boxes,
                         layers=(2,)).item() == pytest.approx(0.0, abs=1e-6)  # only block 2 supervised


def test_negative_pairs_are_left_out_and_bad_layers_refused() -> None:
    boxes = torch.tensor([[0.3, 0.0, 0.25, 0.2], [0.1, 0.6, 0.5, 0.3]])
    target = division_target(boxes, side=4)
    log_probs = torch.cat((_confident(target[:1], 40.0), _confident(1 - target[1:], 3.0)))
    present = torch.tensor([1.0, 0.0])
    assert division_loss({1: log_probs}, boxes, present=present).item() == pytest.approx(0.0, abs=1e-6)
    assert division_loss({1: log_probs}, boxes).item() > 1.0
    assert division_loss({1: log_probs}, boxes, present=torch.zeros(2)).item() == 0.0
    with pytest.raises(ValueError, match=r"block\(s\) \[3\] have no division MLP"):
        division_loss({1: log_probs}, boxes, layers=(3,))
    with pytest.raises(ValueError, match="block indices"):
        LossWeights(division=1.0, division_layers=(0,))


def test_training_forward_exposes_log_probs_and_eval_is_unchanged(tiny_cfg) -> None:
    cfg = replace(tiny_cfg, depth=3, division_modes=("two_stream", "auto"))
    model = GRM(cfg).train()
    template = torch.randn(2, 3, cfg.template_size, cfg.template_size)
    search = torch.randn(2, 3, cfg.search_size, cfg.search_size)
    out = model(template, search)
    assert list(out["division_log_probs"]) == [2]  # the fixed block 1 has no MLP
    assert out["division_log_probs"][2].shape == (2, cfg.num_search_tokens, 2)
    assert "division_log_probs" not in model.eval()(template, search)
    boxes = torch.tensor([[0.3, 0.3, 0.3, 0.3]] * 2)
    with pytest.raises(ValueError, match=r"block\(s\) \[1\]"):
        tracking_loss(model.train()(template, search), boxes, LossWeights(division=1.0, division_layers=(1,)))


def test_a_training_step_on_the_division_loss_moves_the_mlps_towards_the_box(tiny_cfg) -> None:
    torch.manual_seed(0)
    model = GRM(tiny_cfg).train()
    optimizer = torch.optim.AdamW(param_groups(model, lr=1e-2))
    template = torch.randn(4, 3, tiny_cfg.template_size, tiny_cfg.template_size)
    search = torch.randn(4, 3, tiny_cfg.search_size, tiny_cfg.search_size)
    boxes = torch.tensor([[0.2, 0.2, 0.4, 0.4], [0.5, 0.1, 0.3, 0.3], [0.0, 0.6, 0.5, 0.4],
                          [0.4, 0.4, 0.2, 0.2]])
    before = {n: p.detach().clone() for n, p in model.named_parameters() if ".divide_predict." in n}
    losses = []
    for _ in range(15):
        loss = division_loss(model(template, search)["division_log_probs"], boxes)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], losses  # 0.69 -> about 0.01: the MLPs learn the box
    assert all(not torch.equal(p, before[n]) for n, p in model.named_parameters() if n in before)


def test_trainer_logs_the_division_loss(tmp_path, tiny_cfg, small_source, tiny_sampler) -> None:
    torch.manual_seed(0)
    settings = TrainSettings(steps=2, batch_size=2, out_dir=tmp_path, log_every=1000, save_every=1000,
                             loss_weights=LossWeights(division=0.5))
    result = Trainer(GRM(tiny_cfg), PairDataset([small_source], tiny_sampler), settings).run()
    assert result.stats["division"] > 0
    saved = read_checkpoint(result.checkpoint)["settings"]["loss_weights"]
    assert saved["division"] == 0.5


def test_recipe_modifiers_and_cli_flags_reach_the_run(tmp_path: Path, monkeypatch) -> None:
    fields = {"embed_dim": 32, "depth": 2, "num_heads": 2, "template_size": 32, "search_size": 64,
              "head_channels": 16, "division_hidden": [16, 8], "drop_path": 0.0, "pretrain_grid": 4}
    plain, scaled = tmp_path / "tiny.yaml", tmp_path / "tiny_c3.yaml"
    plain.write_text(yaml.safe_dump(fields))
    scaled.write_text(yaml.safe_dump({**fields, "attention_scaling": "region"}))
    recipe = Recipe(variant=str(plain), data=("synthetic",), batch=2, stages=(Stage("only", 1, 1e-3),))
    ablation = recipe.with_division_loss(0.5, (1,)).with_variant(str(scaled))
    assert recipe.loss_weights().division == 0 and ablation.loss_weights() == LossWeights(
        division=0.5, division_layers=(1,))
    final = run_recipe(ablation, tmp_path / "run", workers=0)  # C.1 on a C.3 variant trains
    assert read_checkpoint(final.parent / "latest.pth")["settings"]["loss_weights"]["division"] == 0.5
    assert load_model(load_variant(str(scaled)), final).cfg.attention_scaling == "region"
    with pytest.raises(ValueError, match=">= 0"):
        recipe.with_division_loss(-1.0)

    ran: list[Recipe] = []
    monkeypatch.setattr(cli, "run_recipe", lambda r, out, workers: ran.append(r) or final)
    cli.recipe_main(["nanostem_256", "--out", str(tmp_path / "x"), "--division-loss", "0.5",
                     "--variant", "nanostem_256_c3token"])
    assert ran[0] == get_recipe("nanostem_256").with_division_loss(0.5).with_variant("nanostem_256_c3token")
    with pytest.raises(SystemExit):
        cli.recipe_main(["nanostem_256", "--out", str(tmp_path / "x"), "--division-layers", "1"])
