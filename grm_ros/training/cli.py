"""Command lines: ``grm-train`` (train or fine-tune GRM) and ``grm-synth`` (write synthetic sequences).

Single process: ``grm-train --variant small_cpu --data synthetic --data sot_train --steps 2000 --batch 16``.
Multi-GPU: ``torchrun --nproc_per_node 4 -m grm_ros.training train --variant vitb_256 --pretrained mae.pth
--data lasot=/d/LaSOT --data got10k=/d/GOT10k/train --data coco=/d/COCO --data trackingnet=/d/TrackingNet``.
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import torch

from grm_ros.datasets.materials import discover_material
from grm_ros.datasets.synthetic import SyntheticVideo, SynthParams, write_sequence
from grm_ros.model import GRM, init_from_pretrained_vit, load_variant, read_state_dict
from grm_ros.training.losses import LossWeights
from grm_ros.training.mix import build_sources
from grm_ros.training.recipe import STEM_INITS, run_recipe
from grm_ros.training.recipes import get_recipe, list_recipes
from grm_ros.training.sampler import PairDataset, SamplerConfig, SyntheticSource
from grm_ros.training.trainer import LATEST, Trainer, TrainSettings, evaluate_pairs, setup_distributed

log = logging.getLogger("grm_ros.training")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``45m`` or ``2.5h``."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"bad duration {text!r}: use e.g. 600, 45m or 2.5h")
    value, unit = float(match[1]), match[2] or "s"
    return value * {"s": 1, "m": 60, "h": 3600}[unit]


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"bad frame size {text!r}: use WIDTHxHEIGHT, e.g. 640x360")
    return int(match[1]), int(match[2])


def train_parser() -> argparse.ArgumentParser:
    d = TrainSettings()
    p = argparse.ArgumentParser(
        prog="grm-train",
        description="Train or fine-tune GRM with the authors' recipe.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--variant", default="small_cpu", help="builtin variant name or variant yaml path")
    p.add_argument(
        "--data",
        action="append",
        metavar="NAME[=PATH][@WEIGHT]",
        help="training source, repeatable: synthetic, sot_train, got10k=, lasot=, trackingnet=, "
        "coco=, uniform=; none given means synthetic and sot_train",
    )
    p.add_argument("--steps", type=int, default=d.steps, help="optimizer steps")
    p.add_argument(
        "--time-budget", type=parse_duration, default=None, help="stop after this much training time"
    )
    p.add_argument("--batch", type=int, default=d.batch_size, help="pairs per step per process")
    p.add_argument("--out", type=Path, default=d.out_dir, help="run folder (latest.pth, final.pth)")
    p.add_argument(
        "--resume", default=None, help="checkpoint to continue from; 'auto' = <out>/latest.pth if any"
    )
    p.add_argument("--pretrained", type=Path, default=None, help="MAE or DeiT ViT weights for the backbone")
    p.add_argument(
        "--export", type=Path, default=None, help="also write the final weights-only checkpoint here"
    )
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--backbone-lr-scale", type=float, default=d.backbone_lr_scale)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--grad-clip", type=float, default=d.grad_clip)
    p.add_argument(
        "--lr-drop-at", type=float, default=d.lr_drop_at, help="fraction of the run; LR x0.1 after"
    )
    p.add_argument("--max-interval", type=int, default=SamplerConfig.max_interval)
    p.add_argument("--center-jitter", type=float, default=SamplerConfig.center_jitter)
    p.add_argument("--scale-jitter", type=float, default=SamplerConfig.scale_jitter)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--workers", type=int, default=d.workers, help="data-loading processes per training process"
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--save-every", type=int, default=d.save_every)
    p.add_argument(
        "--eval-pairs",
        type=int,
        default=0,
        help="after training, report loss and IoU on this many held-out synthetic pairs",
    )
    return p


def build_model(variant: str, pretrained: Path | None, seed: int) -> GRM:
    torch.manual_seed(seed)  # same initial weights on every rank
    model = GRM(load_variant(variant))
    if pretrained is not None:
        state = read_state_dict(pretrained)
        pos = state.get("pos_embed", state.get("backbone.pos_embed"))
        if pos is not None and pos.shape[-1] != model.cfg.embed_dim:
            raise ValueError(
                f"{pretrained}: a ViT of width {pos.shape[-1]} cannot initialise variant {variant!r} "
                f"(embed_dim {model.cfg.embed_dim})"
            )
        result = init_from_pretrained_vit(model, state)
        log.info(
            "backbone from %s: %d tensors loaded, %d left as initialised, %d unused",
            pretrained,
            len(result.loaded),
            len(result.missing),
            len(result.unused),
        )
    return model


def train_main(argv: list[str] | None = None) -> int:
    args = train_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    context = setup_distributed(args.device)
    settings = TrainSettings(
        steps=args.steps,
        time_budget=args.time_budget,
        batch_size=args.batch,
        lr=args.lr,
        weight_decay=args.weight_decay,
        backbone_lr_scale=args.backbone_lr_scale,
        lr_drop_at=args.lr_drop_at,
        grad_clip=args.grad_clip,
        seed=args.seed,
        workers=args.workers,
        log_every=args.log_every,
        save_every=args.save_every,
        out_dir=args.out,
        loss_weights=LossWeights(),
    )
    model = build_model(args.variant, args.pretrained, args.seed)
    sampler_cfg = SamplerConfig.for_model(
        model.cfg,
        max_interval=args.max_interval,
        center_jitter=args.center_jitter,
        scale_jitter=args.scale_jitter,
    )
    sources = build_sources(args.data or ["synthetic", "sot_train"], seed=args.seed)
    if context.is_main:
        log.info("data: %s", ", ".join(f"{s.name} ({len(s)} videos, weight {s.weight:g})" for s in sources))
    trainer = Trainer(model, PairDataset(sources, sampler_cfg, seed=args.seed), settings, context)
    resume = args.out / LATEST if args.resume == "auto" else (Path(args.resume) if args.resume else None)
    if resume is not None and resume.is_file():
        trainer.resume(resume)
    elif args.resume not in (None, "auto"):
        raise FileNotFoundError(f"--resume: no checkpoint at {resume}")
    result = trainer.run()
    if context.is_main:
        log.info(
            "done: %d steps, %.0f s, last batch %s",
            result.steps,
            result.elapsed,
            {k: round(v, 4) for k, v in result.stats.items()},
        )
        if args.eval_pairs > 0:
            heldout = SyntheticSource(count=10_000, seed=args.seed, split="heldout")
            scores = evaluate_pairs(
                trainer.model,
                PairDataset([heldout], sampler_cfg, seed=args.seed),
                args.eval_pairs,
                args.batch,
                context.device,
            )
            log.info(
                "held-out synthetic pairs (%d): %s",
                args.eval_pairs,
                {k: round(v, 4) for k, v in scores.items() if k != "grad_norm"},
            )
        if args.export is not None:
            trainer.save(args.export, with_optimizer=False)
            log.info("exported weights to %s", args.export)
    return 0


def recipe_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="grm-train recipe",
        description="Run a training recipe (grm_ros/training/recipes/NAME.py): its stages, data and "
        "augmentation. Resumable: run it again with the same --out to continue.",
    )
    p.add_argument("name", choices=list_recipes(), help="recipe")
    p.add_argument("--out", type=Path, required=True, help="run folder (one sub-folder per stage)")
    p.add_argument("--resume", choices=("auto",), default="auto",
                   help="continue the stages found in --out (always on; kept for the Makefile's spelling)")
    p.add_argument("--seed", type=int, default=None, help="override the recipe's seed")
    p.add_argument("--stem-init", choices=STEM_INITS, default=None,
                   help="ablation: 'random' starts the stem from random weights and trains it at the "
                   "blocks' rate in every stage")
    p.add_argument("--frozen-stem", action="store_true", help="ablation: keep the stem frozen in every stage")
    p.add_argument("--tune-stem", type=float, default=None, metavar="SCALE",
                   help="ablation: the last stage also fine-tunes the stem, at SCALE times the stage's rate")
    p.add_argument("--division-loss", type=float, default=None, metavar="W",
                   help="ablation (appendix C.1): also supervise the token division by the GT box, weight W")
    p.add_argument("--division-layers", type=int, nargs="+", default=(), metavar="BLOCK",
                   help="with --division-loss: supervise only these blocks (default: every dividing block)")
    p.add_argument("--variant", default=None,
                   help="train the recipe on this variant instead (name or yaml), e.g. nanostem_256_c3token")
    p.add_argument("--stages", type=int, default=None, metavar="N",
                   help="run only the recipe's first N stages (an ablation at a smaller, equal budget)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--workers", type=int, default=1, help="data-loading processes")
    p.add_argument("--export", type=Path, default=None, help="also copy the final weights here")
    return p


def recipe_main(argv: list[str] | None = None) -> int:
    args = recipe_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    recipe = get_recipe(args.name)
    if args.seed is not None:
        recipe = replace(recipe, seed=args.seed)
    if args.stem_init == "random":
        recipe = recipe.with_random_stem()
    if args.frozen_stem:
        recipe = recipe.with_frozen_stem()
    if args.tune_stem is not None:
        recipe = recipe.with_tuned_stem(args.tune_stem)
    if args.division_loss is not None:
        recipe = recipe.with_division_loss(args.division_loss, tuple(args.division_layers))
    elif args.division_layers:
        raise SystemExit("grm-train recipe: --division-layers needs --division-loss")
    if args.variant is not None:
        recipe = recipe.with_variant(args.variant)
    if args.stages is not None:
        recipe = recipe.first_stages(args.stages)
    final = run_recipe(recipe, args.out, workers=args.workers)
    if args.export is not None:
        args.export.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(final, args.export)
        log.info("exported weights to %s", args.export)
    return 0


def synth_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="grm-synth",
        description="Write synthetic tracking sequences in the "
        "uniform layout (<out>/<name>/img/00001.jpg, groundtruth.txt).",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (keep it outside the repository)")
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", choices=("heldout", "train"), default="heldout")
    p.add_argument("--length", type=int, default=SynthParams.length, help="frames per sequence")
    p.add_argument("--size", type=_size, default=(SynthParams.width, SynthParams.height), help="WIDTHxHEIGHT")
    p.add_argument("--procedural", action="store_true", help="use procedural textures even if packages exist")
    return p


def synth_main(argv: list[str] | None = None) -> int:
    args = synth_parser().parse_args(argv)
    if args.count < 1:
        raise SystemExit("grm-synth: --count must be >= 1")
    params = SynthParams(width=args.size[0], height=args.size[1], length=args.length)
    material = discover_material(args.split, procedural=args.procedural)
    if material.procedural and not args.procedural:
        print(
            "grm-synth: packaged photos not found, using procedural textures "
            "(apt install lomiri-wallpapers-16.04 tuxpaint-stamps-default)",
            file=sys.stderr,
        )
    for index in range(args.count):
        print(write_sequence(SyntheticVideo(index, args.seed, args.split, params, material), args.out))
    return 0
