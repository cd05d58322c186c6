"""CENTER head: per-cell target score, box size and sub-cell offset on the F x F search grid."""

from __future__ import annotations

import torch
from torch import Tensor, nn

BRANCHES = ("ctr", "offset", "size")
MAP_CLAMP = 1e-4


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class CenterHead(nn.Module):
    """Three identical conv towers (channels c, c/2, c/4, c/8, then 1x1): score (1), offset (2), size (2).

    Attributes are named ``conv{1..5}_{ctr,offset,size}`` to match the released checkpoints.
    """

    def __init__(self, in_channels: int, channels: int = 256) -> None:
        super().__init__()
        widths = [in_channels, channels, channels // 2, channels // 4, channels // 8]
        for branch in BRANCHES:
            for i in range(4):
                setattr(self, f"conv{i + 1}_{branch}", conv_bn_relu(widths[i], widths[i + 1]))
            setattr(self, f"conv5_{branch}", nn.Conv2d(widths[4], 1 if branch == "ctr" else 2, kernel_size=1))
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def _tower(self, branch: str, x: Tensor) -> Tensor:
        for i in range(1, 6):
            x = getattr(self, f"conv{i}_{branch}")(x)
        return x

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, C, F, F) -> score (B,1,F,F), size (B,2,F,F) as w,h / search size, raw offset (B,2,F,F)."""
        score = torch.clamp(self._tower("ctr", x).sigmoid(), MAP_CLAMP, 1 - MAP_CLAMP)
        size = torch.clamp(self._tower("size", x).sigmoid(), MAP_CLAMP, 1 - MAP_CLAMP)
        offset = self._tower("offset", x)
        return score, size, offset


def cal_bbox(score_map: Tensor, size_map: Tensor, offset_map: Tensor) -> Tensor:
    """Box (B, 4) = cx, cy, w, h in [0, 1] crop coordinates at the arg-max cell of ``score_map``.

    As in the authors' code there is no +0.5 cell-centre shift: the offset alone places the centre.
    """
    side = score_map.shape[-1]
    _, idx = torch.max(score_map.flatten(1), dim=1, keepdim=True)
    iy = torch.div(idx, side, rounding_mode="floor")
    ix = idx % side
    gather_idx = idx.unsqueeze(1).expand(-1, 2, 1)
    size = size_map.flatten(2).gather(dim=2, index=gather_idx).squeeze(-1)
    offset = offset_map.flatten(2).gather(dim=2, index=gather_idx).squeeze(-1)
    cx = (ix.to(torch.float) + offset[:, :1]) / side
    cy = (iy.to(torch.float) + offset[:, 1:]) / side
    return torch.cat((cx, cy, size), dim=1)
