"""Running a staged training recipe: each stage is one ``Trainer`` run in its own folder.

A stage that finished leaves ``final.pth`` and is skipped when the recipe runs again; an interrupted stage
continues from its ``latest.pth`` (``--resume auto``), so a recipe spans several sittings and, being
step-based with every sample a function of (seed, index), ends with the same weights as an uninterrupted
run. Stage k starts from stage k-1's weights with a fresh optimizer.

Ablations are modifiers of a recipe, so every row of a table shares its data, stages and budget:
``with_frozen_stem``, ``with_random_stem``, ``with_division_loss`` (appendix C.1) and ``with_variant`` (e.g.
a C.3 attention-scaling variant of the same network).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

import torch

from grm_ros.model import GRM, load_variant, read_checkpoint
from grm_ros.model.checkpoint import load_state_dict_strict
from grm_ros.model.stems import load_pretrained_stem
from grm_ros.training.losses import LossWeights
from grm_ros.training.mix import build_sources
from grm_ros.training.sampler import PairDataset, SamplerConfig
from grm_ros.training.trainer import FINAL, LATEST, Trainer, TrainSettings

log = logging.getLogger(__name__)
STEM_INITS = ("pretrained", "random")


@dataclass(frozen=True)
class Stage:
    """One phase of a recipe. ``stem_lr_scale`` 0 freezes a pretrained stem for the whole stage."""

    name: str
    steps: int
    lr: float
    stem_lr_scale: float = 0.0
    lr_drop_at: float = 0.8

    def __post_init__(self) -> None:
        if self.steps < 1 or not self.lr > 0 or self.stem_lr_scale < 0:
            raise ValueError(f"stage {self.name!r}: needs steps >= 1, lr > 0 and stem_lr_scale >= 0")


@dataclass(frozen=True)
class Recipe:
    """What makes one trained model. ``sampler`` overrides ``SamplerConfig`` fields (augmentation)."""

    variant: str
    data: tuple[str, ...]
    stages: tuple[Stage, ...]
    batch: int = 32
    seed: int = 0
    sampler: Mapping[str, float] = field(default_factory=dict)
    stem_init: str = "pretrained"
    weight_decay: float = 1e-4
    grad_clip: float = 0.1
    snapshot_every: int = 0  # also keep weights every N steps of the last stage, for model selection
    # Head biases start at these priors (None: as built): the score at the share of target cells, the size
    # at the target's share of the search crop (1 / search_factor), so a short run spends no steps
    # unlearning a 0.5 everywhere (CenterNet's focal-loss prior).
    score_prior: float | None = None
    size_prior: float | None = None
    # Appendix C.1: weight of the division supervision by the GT box in every stage (0: off), and the
    # blocks it applies to (empty: every block with a division MLP). See ``losses``.
    division_loss: float = 0.0
    division_layers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("a recipe needs at least one stage")
        object.__setattr__(self, "division_layers", tuple(self.division_layers))
        self.loss_weights()  # validates the division loss settings
        for prior in (self.score_prior, self.size_prior):
            if prior is not None and not 0 < prior < 1:
                raise ValueError(f"head priors must be in (0, 1), got {prior}")
        if self.stem_init not in STEM_INITS:
            raise ValueError(f"stem_init must be one of {STEM_INITS}, got {self.stem_init!r}")
        object.__setattr__(self, "sampler", MappingProxyType(dict(self.sampler)))

    def with_frozen_stem(self) -> Recipe:
        """The ablation 'stem frozen throughout': every stage keeps the stem's weights."""
        return replace(self, stages=tuple(replace(s, stem_lr_scale=0.0) for s in self.stages))

    def with_tuned_stem(self, scale: float) -> Recipe:
        """The ablation 'stem fine-tuned': the last stage also trains the stem at ``scale`` times its rate."""
        if not scale > 0:
            raise ValueError(f"a tuned stem needs a positive rate scale, got {scale}")
        return replace(self, stages=(*self.stages[:-1], replace(self.stages[-1], stem_lr_scale=scale)))

    def with_random_stem(self) -> Recipe:
        """The ablation 'no pretrained features': a random stem, trained at the blocks' rate throughout
        (a random stem kept frozen would be a strawman)."""
        return replace(self, stem_init="random",
                       stages=tuple(replace(s, stem_lr_scale=1.0) for s in self.stages))

    def with_division_loss(self, weight: float, layers: tuple[int, ...] = ()) -> Recipe:
        """The ablation '+C.1': the division MLPs are also supervised by the GT box, at a constant weight."""
        return replace(self, division_loss=weight, division_layers=tuple(layers))

    def with_variant(self, variant: str) -> Recipe:
        """The same recipe on another network variant (name or yaml path) of the same stem."""
        return replace(self, variant=variant)

    def first_stages(self, count: int) -> Recipe:
        """The recipe cut to its first ``count`` stages: ablations compared at one smaller budget."""
        if not 1 <= count <= len(self.stages):
            raise ValueError(f"a recipe of {len(self.stages)} stages cannot run its first {count}")
        return replace(self, stages=self.stages[:count])

    def loss_weights(self) -> LossWeights:
        return LossWeights(division=self.division_loss, division_layers=self.division_layers)


def build_recipe_model(recipe: Recipe) -> GRM:
    """The variant with its stem initialised as the recipe says (same weights on every rank)."""
    torch.manual_seed(recipe.seed)
    model = GRM(load_variant(recipe.variant))
    if model.cfg.stem != "patch" and recipe.stem_init == "pretrained":
        load_pretrained_stem(model.backbone.patch_embed)
    head = model.box_head
    with torch.no_grad():
        for layer, prior in ((head.conv5_ctr, recipe.score_prior), (head.conv5_size, recipe.size_prior)):
            if prior is not None:
                layer.bias.fill_(math.log(prior / (1 - prior)))
    return model


def _set_stem_trainable(model: GRM, trainable: bool) -> None:
    if model.cfg.stem != "patch":
        model.backbone.patch_embed.stem.requires_grad_(trainable)


def run_recipe(recipe: Recipe, out_dir: Path, *, workers: int = 1, save_every: int = 200,
               log_every: int = 20) -> Path:
    """Run (or continue) every stage in one process; returns the last stage's final weights."""
    model = build_recipe_model(recipe)
    sampler_cfg = SamplerConfig.for_model(model.cfg, **recipe.sampler)
    sources = build_sources(list(recipe.data), seed=recipe.seed)
    previous: Path | None = None
    for index, stage in enumerate(recipe.stages):
        stage_dir = out_dir / f"{index + 1}_{stage.name}"
        final = stage_dir / FINAL
        if final.is_file():
            log.info("stage %s already done (%s)", stage.name, final)
            previous = final
            continue
        if previous is not None:
            load_state_dict_strict(model, read_checkpoint(previous)["net"], str(previous))
        _set_stem_trainable(model, stage.stem_lr_scale > 0)
        last = index == len(recipe.stages) - 1
        settings = TrainSettings(
            steps=stage.steps, batch_size=recipe.batch, lr=stage.lr, weight_decay=recipe.weight_decay,
            backbone_lr_scale=1.0, stem_lr_scale=stage.stem_lr_scale, lr_drop_at=stage.lr_drop_at,
            grad_clip=recipe.grad_clip, seed=recipe.seed * 100 + index, workers=workers,
            log_every=log_every, save_every=save_every, out_dir=stage_dir,
            snapshot_every=recipe.snapshot_every if last else 0, loss_weights=recipe.loss_weights(),
        )
        dataset = PairDataset(sources, sampler_cfg, seed=recipe.seed * 100 + index)
        trainer = Trainer(model, dataset, settings)
        if (stage_dir / LATEST).is_file():
            trainer.resume(stage_dir / LATEST)
        log.info("stage %d/%d %s: %d steps at lr %g, stem x%g", index + 1, len(recipe.stages), stage.name,
                 stage.steps, stage.lr, stage.stem_lr_scale)
        result = trainer.run()
        if result.steps < stage.steps:
            raise RuntimeError(f"stage {stage.name} stopped at step {result.steps} of {stage.steps}")
        previous = final
    return final
