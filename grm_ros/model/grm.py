"""The GRM network: a one-stream ViT with token division, followed by the CENTER head.

Template tokens come first, then search tokens; each set has its own learned position embedding. Blocks
from the second one on carry a token-division module (see ``division.py``). Module and parameter names
follow the authors' checkpoints, so their released files load strictly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from grm_ros.model.config import GRMConfig
from grm_ros.model.division import ATTENTION_PATHS, DivisionAttention
from grm_ros.model.head import CenterHead, cal_bbox
from grm_ros.model.stems import StemEmbed

LAYER_NORM_EPS = 1e-6


def resize_pos_embed(grid_embed: Tensor, side: int) -> Tensor:
    """(1, g*g, C) row-major grid -> (1, side*side, C) by bicubic interpolation, as the authors derive
    pos_embed_x / pos_embed_z from the pretrained 14x14 grid."""
    tokens, dim = grid_embed.shape[1:]
    grid = round(tokens**0.5)
    if grid * grid != tokens:
        raise ValueError(f"position embedding has {tokens} grid entries, which is not a square grid")
    image = grid_embed.transpose(1, 2).reshape(1, dim, grid, grid)
    resized = F.interpolate(image, size=(side, side), mode="bicubic", align_corners=False)
    return resized.flatten(2).transpose(1, 2)


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> tokens in row-major order (token = row * W + col)."""

    def __init__(self, patch_size: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, image: Tensor) -> Tensor:
        return self.proj(image).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Module):
    """Stochastic depth per sample (training only)."""

    def __init__(self, prob: float) -> None:
        super().__init__()
        self.prob = prob

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.prob == 0.0:
            return x
        keep = 1.0 - self.prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Block(nn.Module):
    """Pre-norm transformer block; division features and qkv both read the LN1 output."""

    def __init__(self, cfg: GRMConfig, divide: bool, drop_path: float, mode: str = "auto") -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = DivisionAttention(dim, cfg.num_heads, divide, cfg.division_hidden, mode,
                                      cfg.attention_scaling, cfg.scaling_window)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio))

    def forward(self, x: Tensor, num_search: int, path: str, threshold: float, ratio: float,
                search_only: bool = False, log_probs_out: list[Tensor] | None = None) -> tuple[Tensor,
                                                                                            Tensor | None]:
        """``search_only`` and ``log_probs_out``: see ``DivisionAttention.forward``."""
        out, decision = self.attn(self.norm1(x), num_search, path, threshold, ratio, search_only,
                                  log_probs_out)
        if search_only:
            x = x[:, -num_search:]
        x = x + self.drop_path(out)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x, decision


class GRMBackbone(nn.Module):
    """ViT over [template tokens, search tokens]; ``cls_token`` and ``pos_embed`` are kept only because the
    released checkpoints carry them (and ``finetune.init_from_pretrained_vit`` reads ``pos_embed``)."""

    def __init__(self, cfg: GRMConfig) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg.patch_size, dim) if cfg.stem == "patch" else StemEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.pretrain_grid**2 + 1, dim))
        self.pos_embed_x = nn.Parameter(torch.zeros(1, cfg.num_search_tokens, dim))
        self.pos_embed_z = nn.Parameter(torch.zeros(1, cfg.num_template_tokens, dim))
        rates = [cfg.drop_path * i / (cfg.depth - 1) for i in range(cfg.depth)]
        self.blocks = nn.Sequential(*(Block(cfg, divide=i > 0, drop_path=rates[i], mode=cfg.division_mode(i))
                                      for i in range(cfg.depth)))
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)

    def forward(self, template: Tensor, search: Tensor, path: str, threshold: float,
                ratio: float) -> tuple[Tensor, list[Tensor], dict[int, Tensor]]:
        """Final-LN search tokens (B, Nx, C), the head's only input, and, in training, each division
        layer's (B, 1) fraction of interacting tokens (class-1 value > 0.5, which also counts a C.3 layer's
        probabilities) and, per block with a division MLP, its (B, Nx, 2) log-probabilities.

        The fast path runs the last block on the search rows alone, skipping about 1 % of vitb_256's products
        that only ever fed template outputs, which nothing reads.
        """
        z = self.patch_embed(template) + self.pos_embed_z
        x = self.patch_embed(search) + self.pos_embed_x
        num_search = x.shape[1]
        tokens = torch.cat((z, x), dim=1)
        fractions = []
        log_probs: dict[int, Tensor] = {}
        prune = path == "fast" and not self.training
        for index, block in enumerate(self.blocks):
            last = index == len(self.blocks) - 1
            collected: list[Tensor] | None = [] if self.training else None
            tokens, decision = block(tokens, num_search, path, threshold, ratio, search_only=prune and last,
                                     log_probs_out=collected)
            if decision is not None and self.training:
                interacting = (decision[..., 1] > 0.5).to(decision.dtype)
                fractions.append(interacting.sum(dim=-1, keepdim=True) / num_search)
            if collected:
                log_probs[index] = collected[0]
        return self.norm(tokens[:, -num_search:]), fractions, log_probs


class GRM(nn.Module):
    """GRM tracker network. ``attention`` picks the eval-time attention path: "fast" or "reference"."""

    def __init__(self, cfg: GRMConfig, attention: str = "fast") -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = GRMBackbone(cfg)
        self.box_head = CenterHead(cfg.embed_dim, cfg.head_channels)
        self.attention = attention
        self._init_weights()

    @property
    def attention(self) -> str:
        return self._attention

    @attention.setter
    def attention(self, name: str) -> None:
        if name not in ATTENTION_PATHS:
            raise ValueError(f"unknown attention path {name!r}; choose one of {ATTENTION_PATHS}")
        self._attention = name

    def set_attention(self, name: str) -> GRM:
        """Switch between "fast" and "reference" at run time (training always uses the reference form,
        whose policy weighting carries the gradient to the division MLPs)."""
        self.attention = name
        return self

    @torch.no_grad()
    def _init_weights(self) -> None:
        """ViT init (trunc-normal 0.02 linears, unit LayerNorms), position grids derived from ``pos_embed``
        like the authors' build; the head keeps its own xavier init."""
        for module in self.backbone.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        backbone = self.backbone
        nn.init.trunc_normal_(backbone.cls_token, std=0.02)
        nn.init.trunc_normal_(backbone.pos_embed, std=0.02)
        grid = backbone.pos_embed[:, 1:]
        backbone.pos_embed_z.copy_(resize_pos_embed(grid, self.cfg.template_feat))
        backbone.pos_embed_x.copy_(resize_pos_embed(grid, self.cfg.search_feat))

    def _check_input(self, name: str, image: Tensor, size: int) -> None:
        if image.ndim != 4 or image.shape[1] != 3 or tuple(image.shape[2:]) != (size, size):
            raise ValueError(f"{self.cfg.name}: {name} must be (B, 3, {size}, {size}), "
                             f"got {tuple(image.shape)}")

    def forward(self, template: Tensor, search: Tensor, threshold: float = 0.0, ratio: float = 0.0) -> dict:
        """Normalised crops -> dict(pred_boxes (B,1,4) cx,cy,w,h, score_map, size_map, offset_map, decisions).

        ``decisions`` is (B, depth-1) interacting-token fractions in training and ``[]`` in eval. The box
        decode is for the losses; inference reads ``maps`` (the tracker decodes with its window). Training
        adds ``division_log_probs``: block index -> (B, Nx, 2) division log-probabilities, for every block
        with a division MLP (fixed-mode blocks have none), which the C.1 loss supervises.
        """
        score_map, size_map, offset_map, fractions, log_probs = self._heads(template, search, threshold,
                                                                            ratio)
        out = {
            "pred_boxes": cal_bbox(score_map, size_map, offset_map).unsqueeze(1),
            "score_map": score_map,
            "size_map": size_map,
            "offset_map": offset_map,
            "decisions": torch.cat(fractions, dim=-1) if self.training else [],
        }
        if self.training:
            out["division_log_probs"] = log_probs
        return out

    def maps(self, template: Tensor, search: Tensor, threshold: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
        """(score_map, size_map, offset_map): all that inference needs, with no box decode."""
        return self._heads(template, search, threshold, 0.0)[:3]

    def _heads(self, template: Tensor, search: Tensor, threshold: float,
               ratio: float) -> tuple[Tensor, Tensor, Tensor, list[Tensor], dict[int, Tensor]]:
        self._check_input("template", template, self.cfg.template_size)
        self._check_input("search", search, self.cfg.search_size)
        if template.shape[0] != search.shape[0]:
            raise ValueError(f"{self.cfg.name}: template batch {template.shape[0]} != "
                             f"search batch {search.shape[0]}")
        if not 0.0 <= threshold <= 1.0 or not 0.0 <= ratio <= 1.0:
            raise ValueError(f"threshold and ratio must be in [0, 1], got {threshold} and {ratio}")
        search_tokens, fractions, log_probs = self.backbone(template, search, self.attention, threshold,
                                                            ratio)
        side = self.cfg.search_feat
        feature = search_tokens.transpose(1, 2).reshape(search_tokens.shape[0], -1, side, side)
        score_map, size_map, offset_map = self.box_head(feature)
        return score_map, size_map, offset_map, fractions, log_probs
