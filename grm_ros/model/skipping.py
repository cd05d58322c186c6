"""Division skipping (paper appendix C.2): find layers whose token division never changes, and fix them.

In a converged GRM many dividing layers put (almost) every search token in the same class on every frame:
pure two-stream (all class 0) or pure one-stream (all class 1) relation modelling. Such a layer's division
MLP can be dropped and its attention replaced by the fixed pattern (``DivisionAttention`` with a mode).

Flow: ``DivisionRecorder`` records, per dividing layer, the fraction of search tokens that interact with the
template on real crops; ``propose_modes`` turns those fractions into ``division_modes``; ``derive_config``
and ``write_variant`` produce the derived variant. The derived variant loads the ORIGINAL checkpoint:
``drop_skipped_division_keys`` removes exactly the ``...blocks.<i>.attn.divide_predict.*`` entries of the
fixed layers (and nothing else), so loading stays strict for every other key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml
from torch import Tensor, nn

from grm_ros.model.config import DIVISION_MODES, GRMConfig

_DIVISION_KEY = re.compile(r"^(?:module\.)?backbone\.blocks\.(\d+)\.attn\.divide_predict\.")


def skipped_blocks(cfg: GRMConfig) -> list[int]:
    """Indices of the blocks whose division is fixed (no division MLP)."""
    return [i for i in range(1, cfg.depth) if cfg.division_mode(i) != "auto"]


def drop_skipped_division_keys(state_dict: dict[str, Tensor], cfg: GRMConfig) -> tuple[dict[str, Tensor],
                                                                                        list[str]]:
    """The state dict without the division-MLP keys of ``cfg``'s fixed blocks, and the keys dropped.

    Only those keys go: a checkpoint lacking them (already derived) is fine, anything else still has to
    match the model exactly.
    """
    fixed = set(skipped_blocks(cfg))
    dropped = [k for k in state_dict if (m := _DIVISION_KEY.match(k)) and int(m.group(1)) in fixed]
    kept = {k: v for k, v in state_dict.items() if k not in set(dropped)}
    return kept, dropped


@dataclass
class LayerFractions:
    """Interacting-token fractions seen by one dividing block over every recorded sample."""

    block: int
    count: int = 0
    low: float = 1.0
    high: float = 0.0
    total: float = 0.0

    def add(self, fractions: list[float]) -> None:
        self.count += len(fractions)
        self.low = min(self.low, *fractions)
        self.high = max(self.high, *fractions)
        self.total += sum(fractions)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else float("nan")

    def to_dict(self) -> dict:
        return {"block": self.block, "samples": self.count, "min": self.low, "max": self.high,
                "mean": self.mean}


@dataclass
class DivisionRecorder:
    """Forward hooks on every predicting division layer of a GRM; use as ``with recorder.attach(model):``."""

    layers: dict[int, LayerFractions] = field(default_factory=dict)

    @contextmanager
    def attach(self, model: nn.Module) -> Iterator[DivisionRecorder]:
        """Refuses a C.3 (attention scaling) model: its division is a probability, not a class, and fixing
        a layer to all-0 or all-1 by thresholding it would not reproduce what the layer computes."""
        if model.cfg.attention_scaling != "none":
            raise ValueError(f"division skipping (C.2) needs discrete divisions; variant {model.cfg.name!r} "
                             f"uses attention_scaling {model.cfg.attention_scaling!r} (C.3)")
        handles = []
        for index, block in enumerate(model.backbone.blocks):
            if block.attn.divide_predict is None:
                continue
            stats = self.layers.setdefault(index, LayerFractions(index))
            handles.append(block.attn.register_forward_hook(self._hook(stats)))
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()

    @staticmethod
    def _hook(stats: LayerFractions):
        def record(module: nn.Module, args: tuple, output: tuple[Tensor, Tensor | None]) -> None:
            decision = output[1]
            stats.add(decision[..., 1].float().mean(dim=-1).tolist())
        return record

    def summary(self) -> list[dict]:
        return [self.layers[i].to_dict() for i in sorted(self.layers)]


def propose_modes(cfg: GRMConfig, recorder: DivisionRecorder, tolerance: float) -> tuple[str, ...]:
    """Per dividing block: "two_stream" if at most ``tolerance`` of the search tokens ever interacted,
    "one_stream" if at least 1 - ``tolerance`` always did, else "auto". Blocks already fixed stay fixed."""
    if not 0.0 <= tolerance < 0.5:
        raise ValueError(f"tolerance must be in [0, 0.5), got {tolerance}")
    modes = []
    for block in range(1, cfg.depth):
        stats = recorder.layers.get(block)
        if cfg.division_mode(block) != "auto":
            modes.append(cfg.division_mode(block))
        elif stats is None or stats.count == 0:
            raise ValueError(f"no division decisions were recorded for block {block}; run the model first")
        elif stats.high <= tolerance:
            modes.append("two_stream")
        elif stats.low >= 1.0 - tolerance:
            modes.append("one_stream")
        else:
            modes.append("auto")
    return tuple(modes)


def derive_config(cfg: GRMConfig, modes: tuple[str, ...], name: str | None = None) -> GRMConfig:
    """``cfg`` with the given division modes, named ``<name>_skip`` unless told otherwise."""
    unknown = [m for m in modes if m not in DIVISION_MODES]
    if unknown:
        raise ValueError(f"unknown division modes {unknown}; choose from {DIVISION_MODES}")
    return replace(cfg, name=name or f"{cfg.name}_skip", division_modes=tuple(modes))


def write_variant(cfg: GRMConfig, path: str | Path, comment: str = "") -> Path:
    """The variant as a yaml file that ``load_variant(path)`` reads back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "".join(f"# {line}\n" for line in comment.splitlines())
    path.write_text(header + yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return path
