"""Recipes as code: stages freeze and unfreeze the stem, a finished stage is skipped on a rerun, the run
is a function of its seed, and the ablations change exactly what they say."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from grm_ros.model import load_model, load_variant, read_checkpoint
from grm_ros.model.stems import STEM_WEIGHTS
from grm_ros.training.recipe import Recipe, Stage, build_recipe_model, run_recipe
from grm_ros.training.recipes import get_recipe, list_recipes

STEM = "backbone.patch_embed.stem."


@pytest.fixture
def tiny_recipe(tmp_path: Path) -> Recipe:
    variant = tmp_path / "tiny_stem.yaml"
    variant.write_text(yaml.safe_dump({
        "name": "tiny_stem", "stem": "nanotrack", "embed_dim": 32, "depth": 2, "num_heads": 2,
        "template_size": 32, "search_size": 64, "head_channels": 16, "division_hidden": [16, 8],
        "drop_path": 0.0, "pretrain_grid": 4,
    }))
    return Recipe(variant=str(variant), data=("synthetic",), batch=2, seed=3, snapshot_every=1,
                  stages=(Stage("frozen", steps=2, lr=1e-3),
                          Stage("tune", steps=2, lr=1e-3, stem_lr_scale=1.0)),
                  sampler={"p_blur": 0.5, "p_distractor": 0.5, "p_negative": 0.3}, score_prior=0.01,
                  size_prior=0.25)


def _stem(path: Path) -> dict[str, torch.Tensor]:
    return {k[len(STEM):]: v for k, v in read_checkpoint(path)["net"].items() if k.startswith(STEM)}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_stages_freeze_then_tune_the_stem_and_a_rerun_skips_them(tiny_recipe: Recipe, tmp_path: Path) -> None:
    packaged = torch.load(STEM_WEIGHTS, weights_only=True)
    final = run_recipe(tiny_recipe, tmp_path / "run", workers=0)
    first = tmp_path / "run" / "1_frozen" / "final.pth"
    assert _same(_stem(first), packaged)  # frozen: the released weights, untouched
    assert not _same(_stem(final), packaged)  # stage 2 fine-tunes the stem
    assert sorted(p.name for p in final.parent.glob("step_*.pth")) == ["step_000001.pth", "step_000002.pth"]
    assert load_model(load_variant(tiny_recipe.variant), final) is not None  # the normal loader takes it

    stamp = final.stat().st_mtime_ns
    assert run_recipe(tiny_recipe, tmp_path / "run", workers=0) == final and final.stat().st_mtime_ns == stamp


def test_a_recipe_is_a_function_of_its_seed(tiny_recipe: Recipe, tmp_path: Path) -> None:
    a = read_checkpoint(run_recipe(tiny_recipe, tmp_path / "a", workers=0))["net"]
    b = read_checkpoint(run_recipe(tiny_recipe, tmp_path / "b", workers=0))["net"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = read_checkpoint(run_recipe(replace(tiny_recipe, seed=4), tmp_path / "c", workers=0))["net"]
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_ablations_change_only_the_stem(tiny_recipe: Recipe, tmp_path: Path) -> None:
    packaged = torch.load(STEM_WEIGHTS, weights_only=True)
    frozen = tiny_recipe.with_frozen_stem()
    assert [s.stem_lr_scale for s in frozen.stages] == [0.0, 0.0]
    assert _same(_stem(run_recipe(frozen, tmp_path / "frozen", workers=0)), packaged)
    tuned = frozen.with_tuned_stem(0.1)
    assert [s.stem_lr_scale for s in tuned.stages] == [0.0, 0.1]
    with pytest.raises(ValueError, match="positive"):
        frozen.with_tuned_stem(0.0)
    random = tiny_recipe.with_random_stem()
    assert random.stem_init == "random" and [s.stem_lr_scale for s in random.stages] == [1.0, 1.0]
    start = build_recipe_model(random).backbone.patch_embed.stem.state_dict()
    assert not _same(start, packaged)


def test_head_priors_set_the_initial_maps(tiny_recipe: Recipe) -> None:
    model = build_recipe_model(tiny_recipe).eval()
    cfg = model.cfg
    with torch.no_grad():
        out = model(torch.zeros(1, 3, cfg.template_size, cfg.template_size),
                    torch.zeros(1, 3, cfg.search_size, cfg.search_size))
    assert out["score_map"].mean().item() < 0.1  # the 0.01 prior, not sigmoid(0) = 0.5
    assert abs(out["size_map"].mean().item() - 0.25) < 0.15
    with pytest.raises(ValueError, match="priors"):
        replace(tiny_recipe, score_prior=1.5)


def test_the_default_recipe_is_registered() -> None:
    assert "nanostem_256" in list_recipes()
    recipe = get_recipe("nanostem_256")
    assert load_variant(recipe.variant).stem == "nanotrack"
    assert recipe.stages[0].stem_lr_scale == 0 and recipe.stages[-1].stem_lr_scale > 0
    assert not any("sot=" in d or d.startswith("sot@") or d == "sot" for d in recipe.data)
    with pytest.raises(ValueError, match="unknown recipe"):
        get_recipe("nope")


def test_first_stages_cuts_the_recipe_for_an_equal_budget_ablation(tiny_recipe: Recipe) -> None:
    cut = tiny_recipe.first_stages(1)
    assert [s.name for s in cut.stages] == ["frozen"] and cut.sampler == tiny_recipe.sampler
    for count in (0, 3):
        with pytest.raises(ValueError, match="first"):
            tiny_recipe.first_stages(count)
