"""The training loop: AdamW in the authors' two groups, step LR drop, gradient clipping, DDP, resume.

Runs are step-based (the authors' 300 epochs of 60k pairs are 450k steps at batch 40); an optional
wall-clock budget stops a run early, and the LR drop then happens at the same fraction of the budget, so a
time-boxed CPU run still gets its low-LR phase. Under ``torchrun`` (WORLD_SIZE > 1) every rank trains on
its own disjoint samples and gradients are averaged by DistributedDataParallel.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from grm_ros.model import GRM, param_groups, read_checkpoint, save_checkpoint
from grm_ros.model.checkpoint import load_state_dict_strict
from grm_ros.training.losses import LossWeights, tracking_loss
from grm_ros.training.progress import Progress
from grm_ros.training.sampler import PairDataset, StepIndices

log = logging.getLogger(__name__)

SAMPLES_PER_EPOCH = 60_000  # the authors' epoch; only used to fill the checkpoint's 'epoch' field
LATEST = "latest.pth"
FINAL = "final.pth"


@dataclass
class TrainSettings:
    """Defaults are the authors' recipe for vitb_256 (FACTS §11)."""

    steps: int = 450_000
    time_budget: float | None = None  # seconds; stop early when spent
    batch_size: int = 40  # per rank
    lr: float = 4e-4
    weight_decay: float = 1e-4
    backbone_lr_scale: float = 0.1
    stem_lr_scale: float = 1.0  # a pretrained stem's rate relative to lr (stem variants only)
    lr_drop_at: float = 0.8  # fraction of the run (epoch 240 of 300)
    lr_drop_factor: float = 0.1
    grad_clip: float = 0.1
    seed: int = 0
    workers: int = 0
    log_every: int = 20
    save_every: int = 1000
    snapshot_every: int = 0  # also keep weights-only step_NNNNNN.pth every N steps (model selection)
    out_dir: Path = field(default_factory=lambda: Path(".cache/grm-train"))
    loss_weights: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got {self.steps} and {self.batch_size}")
        if self.time_budget is not None and not self.time_budget > 0:
            raise ValueError(f"time_budget must be > 0 seconds, got {self.time_budget}")
        if not 0 < self.lr_drop_at <= 1:
            raise ValueError(f"lr_drop_at must be in (0, 1], got {self.lr_drop_at}")
        if self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0, got {self.grad_clip}")


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto") -> DistContext:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on GPUs, gloo on CPU)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext(device=torch.device(device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world_size, device=dev)


@dataclass
class TrainResult:
    steps: int
    elapsed: float
    stats: dict[str, float]
    checkpoint: Path | None


class Trainer:
    """Trains ``model`` on pairs from ``dataset``; see the module docstring for the schedule."""

    def __init__(
        self, model: GRM, dataset: PairDataset, settings: TrainSettings, context: DistContext | None = None
    ) -> None:
        self.settings = settings
        self.context = context or DistContext()
        self.dataset = dataset
        self.model = model.to(self.context.device)
        self.model.train()
        if self.context.world_size > 1:
            ids = [self.context.device.index] if self.context.device.type == "cuda" else None
            # cls_token and pos_embed are kept for strict loading but never used in forward.
            self.net: torch.nn.Module = DistributedDataParallel(
                self.model, device_ids=ids, find_unused_parameters=True
            )
        else:
            self.net = self.model
        groups = param_groups(self.model, settings.lr, settings.backbone_lr_scale, settings.weight_decay,
                              settings.stem_lr_scale)
        for group in groups:
            group["base_lr"] = group["lr"]
        self.optimizer = torch.optim.AdamW(groups, lr=settings.lr, weight_decay=settings.weight_decay)
        self.step = 0
        self._base_elapsed = 0.0  # training seconds of earlier processes (resume)
        self._started: float | None = None

    @property
    def elapsed(self) -> float:
        """Training wall time so far, across resumes."""
        running = time.monotonic() - self._started if self._started is not None else 0.0
        return self._base_elapsed + running

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: Path, with_optimizer: bool = True) -> Path:
        samples = self.step * self.settings.batch_size * self.context.world_size
        extra = {"step": self.step, "elapsed": self.elapsed, "settings": _plain(asdict(self.settings))}
        if with_optimizer:
            extra["optimizer"] = self.optimizer.state_dict()
        return save_checkpoint(self.model, path, epoch=samples // SAMPLES_PER_EPOCH, extra=extra)

    def resume(self, path: str | Path) -> None:
        """Continue from a checkpoint written by ``save``: weights, optimizer, step and elapsed time."""
        ckpt = read_checkpoint(path)
        if not isinstance(ckpt, dict) or "optimizer" not in ckpt or "step" not in ckpt:
            raise ValueError(
                f"{path}: not a resumable training checkpoint (needs 'net', 'optimizer', 'step')"
            )
        load_state_dict_strict(self.model, ckpt["net"], str(path))
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.step, self._base_elapsed = int(ckpt["step"]), float(ckpt.get("elapsed", 0.0))
        log.info("resumed %s at step %d", path, self.step)

    # ------------------------------------------------------------------ schedule
    def progress(self, elapsed: float) -> float:
        """Fraction of the run done: steps, or the time budget if that runs out first."""
        done = self.step / self.settings.steps
        if self.settings.time_budget:
            done = max(done, elapsed / self.settings.time_budget)
        return done

    def _set_lr(self, progress: float) -> float:
        factor = self.settings.lr_drop_factor if progress >= self.settings.lr_drop_at else 1.0
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        return self.optimizer.param_groups[0]["lr"]

    def _agree(self, elapsed: float) -> float:
        """All ranks use rank 0's clock, so they drop the LR and stop at the same step."""
        if self.context.world_size == 1:
            return elapsed
        value = torch.tensor([elapsed], dtype=torch.float64, device=self.context.device)
        dist.broadcast(value, src=0)
        return float(value.item())

    # ------------------------------------------------------------------ loop
    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        device = self.context.device
        template = batch["template"].to(device, non_blocking=True)
        search = batch["search"].to(device, non_blocking=True)
        target = batch["search_box"].to(device, non_blocking=True)
        present = batch["present"].to(device, non_blocking=True) if "present" in batch else None
        outputs = self.net(template, search)
        loss, stats = tracking_loss(outputs, target, self.settings.loss_weights, present)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        stats["grad_norm"] = float(
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip)
        )
        self.optimizer.step()
        return stats

    def loader(self) -> torch.utils.data.DataLoader:
        s, ctx = self.settings, self.context
        indices = StepIndices(s.batch_size, self.step, ctx.rank, ctx.world_size)
        return torch.utils.data.DataLoader(
            self.dataset,
            batch_size=s.batch_size,
            sampler=indices,
            num_workers=s.workers,
            pin_memory=ctx.device.type == "cuda",
            persistent_workers=s.workers > 0,
        )

    def run(self) -> TrainResult:
        s, ctx = self.settings, self.context
        torch.manual_seed(s.seed * 1000 + ctx.rank + self.step)  # Gumbel noise and drop-path differ per rank
        self._started = time.monotonic()
        bar = Progress(s.steps, start=self.step, every=s.log_every, enabled=ctx.is_main)
        stats: dict[str, float] = {}
        saved: Path | None = None
        batches = iter(self.loader())
        try:
            while self.step < s.steps:
                elapsed = self._agree(self.elapsed)
                if s.time_budget and elapsed >= s.time_budget:
                    break
                lr = self._set_lr(self.progress(elapsed))
                stats = self.train_step(next(batches))
                self.step += 1
                bar.update(self.step, stats, lr)
                if ctx.is_main and self.step % s.save_every == 0:
                    self.save(s.out_dir / LATEST)
                if ctx.is_main and s.snapshot_every and self.step % s.snapshot_every == 0:
                    self.save(s.out_dir / f"step_{self.step:06d}.pth", with_optimizer=False)
        finally:
            bar.close()
            self._base_elapsed, self._started = self.elapsed, None
        if ctx.is_main:
            self.save(s.out_dir / LATEST)
            saved = self.save(s.out_dir / FINAL, with_optimizer=False)
            log.info("trained %d steps in %.0f s; weights in %s", self.step, self.elapsed, saved)
        return TrainResult(self.step, self.elapsed, stats, saved)


@torch.no_grad()
def evaluate_pairs(
    model: GRM, dataset: PairDataset, count: int, batch_size: int = 32, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Loss components and mean IoU of the raw prediction over items ``0..count-1`` in eval mode (running
    BN statistics, deterministic division): a quality check on pairs the run did not train on."""
    if count < 1:
        raise ValueError(f"evaluate_pairs needs count >= 1, got {count}")
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    for first in range(0, count, batch_size):
        items = [dataset[i] for i in range(first, min(count, first + batch_size))]
        batch = torch.utils.data.default_collate(items)
        outputs = model(batch["template"].to(device), batch["search"].to(device))
        _, stats = tracking_loss(outputs, batch["search_box"].to(device))
        for key, value in stats.items():
            sums[key] = sums.get(key, 0.0) + value * len(items)
    model.train(was_training)
    return {key: value / count for key, value in sums.items()}


def _plain(value: object) -> object:
    """Settings as plain containers, so the checkpoint loads with ``weights_only=True``."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
