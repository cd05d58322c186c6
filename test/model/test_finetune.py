"""Starting from a pretrained ViT, and the optimizer split."""

from __future__ import annotations

import pytest
import torch

from grm_ros.model import GRM, GRMConfig, init_from_pretrained_vit, param_groups


def synthetic_vit(cfg: GRMConfig, grid: int, depth: int) -> dict[str, torch.Tensor]:
    """An MAE/DeiT-style state_dict: bare keys, a cls entry, a classifier head, maybe extra blocks."""
    dim = cfg.embed_dim
    cols = torch.linspace(-1.0, 1.0, grid).repeat(grid)  # varies along x (columns) only
    pos = cols[None, :, None] * torch.arange(1.0, dim + 1)[None, None, :]
    state = {
        "cls_token": torch.full((1, 1, dim), 5.0),
        "pos_embed": torch.cat((torch.full((1, 1, dim), 1000.0), pos), dim=1),  # cls entry must be dropped
        "patch_embed.proj.weight": torch.randn(dim, 3, cfg.patch_size, cfg.patch_size),
        "patch_embed.proj.bias": torch.randn(dim),
        "norm.weight": torch.randn(dim),
        "norm.bias": torch.randn(dim),
        "head.weight": torch.randn(1000, dim),
        "head.bias": torch.randn(1000),
    }
    for i in range(depth):
        state[f"blocks.{i}.attn.qkv.weight"] = torch.randn(3 * dim, dim)
        state[f"blocks.{i}.mlp.fc1.weight"] = torch.randn(4 * dim, dim)
    return state


def test_init_from_pretrained_vit(tiny_cfg: GRMConfig) -> None:
    model = GRM(tiny_cfg)
    state = synthetic_vit(tiny_cfg, grid=tiny_cfg.pretrain_grid, depth=tiny_cfg.depth + 2)
    report = init_from_pretrained_vit(model, state)
    backbone = model.backbone
    assert torch.equal(backbone.blocks[1].attn.qkv.weight, state["blocks.1.attn.qkv.weight"])
    assert torch.equal(backbone.patch_embed.proj.weight, state["patch_embed.proj.weight"])
    assert torch.equal(backbone.pos_embed, state["pos_embed"])
    assert "head.weight" in report.unused and f"blocks.{tiny_cfg.depth}.attn.qkv.weight" in report.unused
    assert {"blocks.1.attn.divide_predict.0.weight", "blocks.0.norm1.weight"} <= set(report.missing)
    assert "pos_embed_x" not in report.missing

    # search grid = pretrained grid (4x4): the bicubic resize is the identity
    assert tiny_cfg.search_feat == tiny_cfg.pretrain_grid
    torch.testing.assert_close(backbone.pos_embed_x, state["pos_embed"][:, 1:])
    assert backbone.pos_embed_z.shape == (1, 4, tiny_cfg.embed_dim)
    assert backbone.pos_embed_z.abs().max() < 1000


def test_pos_embed_resize_keeps_row_major_orientation(tiny_cfg: GRMConfig) -> None:
    cfg = GRMConfig(**{**tiny_cfg.to_dict(), "search_size": 112})  # 7x7 search grid from a 4x4 grid
    model = GRM(cfg)
    init_from_pretrained_vit(model, synthetic_vit(cfg, grid=4, depth=1))
    grid = model.backbone.pos_embed_x.detach().reshape(7, 7, cfg.embed_dim)
    torch.testing.assert_close(grid, grid[:1].expand(7, -1, -1))  # every row identical: x-only variation
    assert (grid[0, 1:, 0] > grid[0, :-1, 0]).all()  # increasing along columns
    assert grid.abs().max() < 1000  # the cls entry never leaks in
    torch.testing.assert_close(grid[:, :, 5], grid[:, :, 0] * 6)  # per-channel scale kept


def test_distilled_deit_drops_both_prefix_entries(tiny_cfg: GRMConfig) -> None:
    state = synthetic_vit(tiny_cfg, grid=4, depth=1)
    pos = state["pos_embed"]
    state["pos_embed"] = torch.cat((pos[:, :1], torch.full_like(pos[:, :1], -1000.0), pos[:, 1:]), dim=1)
    model = GRM(tiny_cfg)
    init_from_pretrained_vit(model, state)
    torch.testing.assert_close(model.backbone.pos_embed_x, pos[:, 1:])  # 4x4 -> 4x4 identity


def test_init_requires_pos_embed(tiny_cfg: GRMConfig) -> None:
    with pytest.raises(ValueError, match="pos_embed"):
        init_from_pretrained_vit(GRM(tiny_cfg), {"norm.weight": torch.ones(tiny_cfg.embed_dim)})


def test_param_groups_split(tiny_cfg: GRMConfig) -> None:
    model = GRM(tiny_cfg)
    model.backbone.cls_token.requires_grad_(False)
    groups = param_groups(model, lr=4e-4, weight_decay=1e-4)
    by_name = {g["name"]: g for g in groups}
    ids = {name: {id(p) for p in g["params"]} for name, g in by_name.items()}
    assert by_name["backbone"]["lr"] == pytest.approx(4e-5) and by_name["head_and_division"]["lr"] == 4e-4
    assert id(model.backbone.blocks[1].attn.divide_predict[0].weight) in ids["head_and_division"]
    assert id(model.box_head.conv1_ctr[0].weight) in ids["head_and_division"]
    assert id(model.backbone.blocks[1].attn.qkv.weight) in ids["backbone"]
    assert id(model.backbone.pos_embed_x) in ids["backbone"]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert ids["backbone"] | ids["head_and_division"] == trainable
    assert not ids["backbone"] & ids["head_and_division"]
    torch.optim.AdamW(groups)  # accepted as is
