"""Starting a GRM from an ImageNet-pretrained ViT, and the authors' optimizer split.

Lives next to the network because both depend on its parameter names: the backbone is a plain ViT plus
division MLPs, so MAE/DeiT weights map onto it by prefix, and the division MLPs train at the head's rate.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from grm_ros.model.grm import GRM, resize_pos_embed


class PretrainedLoad(NamedTuple):
    """What ``init_from_pretrained_vit`` did: keys loaded, model keys left as built, file keys unused."""

    loaded: list[str]
    missing: list[str]
    unused: list[str]


@torch.no_grad()
def init_from_pretrained_vit(model: GRM, state_dict: dict[str, Tensor]) -> PretrainedLoad:
    """Load MAE/DeiT ViT weights into ``model.backbone`` non-strictly, then derive the template and search
    position embeddings from the grid part of ``pos_embed`` (``[:, 1:]``; ``[:, 2:]`` for distilled DeiT)
    by bicubic interpolation.

    Keys may be bare (``blocks.0.attn.qkv.weight``) or already carry ``backbone.``. Entries whose shape does
    not fit (a classifier head, deeper blocks cut off by a shallower variant) are reported as unused.
    """
    backbone = model.backbone
    own = backbone.state_dict()
    loaded, unused = [], []
    for key, value in state_dict.items():
        name = key.removeprefix("backbone.")
        if name in own and own[name].shape == value.shape:
            own[name].copy_(value.to(own[name].dtype))
            loaded.append(name)
        else:
            unused.append(key)
    pretrained_pos = state_dict.get("pos_embed", state_dict.get("backbone.pos_embed"))
    if pretrained_pos is None:
        raise ValueError("pretrained state_dict has no pos_embed: cannot derive pos_embed_x / pos_embed_z")
    tokens = pretrained_pos.shape[1]
    prefix = tokens - math.isqrt(tokens) ** 2  # cls (and DeiT's distillation) entries precede the grid
    grid = pretrained_pos[:, prefix:].to(backbone.pos_embed_x.dtype)
    backbone.pos_embed_z.copy_(resize_pos_embed(grid, model.cfg.template_feat))
    backbone.pos_embed_x.copy_(resize_pos_embed(grid, model.cfg.search_feat))
    derived = {"pos_embed_z", "pos_embed_x"}
    missing = sorted(set(own) - set(loaded) - derived)
    return PretrainedLoad(loaded=sorted(loaded), missing=missing, unused=sorted(unused))


STEM_PREFIX = "backbone.patch_embed.stem."


def param_groups(model: torch.nn.Module, lr: float, backbone_lr_scale: float = 0.1,
                 weight_decay: float = 1e-4, stem_lr_scale: float = 1.0) -> list[dict]:
    """AdamW groups as the authors train: pretrained backbone at ``lr * backbone_lr_scale``; head and
    division MLPs (both new) at ``lr``. A pretrained convolutional stem (stem variants) gets a third group
    at ``lr * stem_lr_scale``, so it can be fine-tuned more gently than the blocks trained from scratch.
    Frozen parameters are left out."""
    full, scaled, stem = [], [], []
    for name, param in getattr(model, "module", model).named_parameters():
        if not param.requires_grad:
            continue
        if name.startswith(STEM_PREFIX):
            stem.append(param)
            continue
        pretrained = name.startswith("backbone.") and ".divide_predict." not in name
        (scaled if pretrained else full).append(param)
    groups = [
        {"name": "head_and_division", "params": full, "lr": lr, "weight_decay": weight_decay},
        {"name": "backbone", "params": scaled, "lr": lr * backbone_lr_scale, "weight_decay": weight_decay},
    ]
    if stem:
        groups.append({"name": "stem", "params": stem, "lr": lr * stem_lr_scale,
                       "weight_decay": weight_decay})
    return groups
