"""Gaussian centre heatmaps used as the focal-loss target (FACTS §11).

The authors draw CenterNet heatmaps whose radius comes from CornerNet's ``gaussian_radius`` in its
"bug version": each of the three quadratic roots is divided by 2 instead of by ``2a``. The radius is
therefore larger than the geometric derivation says; we reproduce it exactly because the released
weights were trained against these targets.
"""

from __future__ import annotations

import math

import torch

MIN_OVERLAP = 0.7


def gaussian_radius(height: float, width: float, min_overlap: float = MIN_OVERLAP) -> float:
    """CornerNet radius, bug version: every root is ``(b + sqrt(b² - 4ac)) / 2``."""
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * c1)) / 2

    a2 = 4.0
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 4 * a2 * c2)) / 2

    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def gaussian_kernel(radius: int) -> torch.Tensor:
    """(2r+1)² Gaussian with σ = (2r+1)/6, peak 1, tails below float64 eps·max set to 0."""
    side = 2 * radius + 1
    sigma = side / 6
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma * sigma))
    kernel[kernel < torch.finfo(torch.float64).eps * kernel.max()] = 0
    return kernel.float()


def draw_gaussian(heatmap: torch.Tensor, center_xy: tuple[int, int], radius: int) -> None:
    """Max-merge a Gaussian at integer cell ``center_xy`` into ``heatmap`` (H, W), clipped at borders.

    A centre outside the map draws nothing, which leaves the focal loss without a positive (the authors'
    code then falls back to the negative term only).
    """
    height, width = heatmap.shape
    x, y = center_xy
    if not (0 <= x < width and 0 <= y < height):
        return
    kernel = gaussian_kernel(radius).to(heatmap.device)
    left, right = min(x, radius), min(width - x, radius + 1)
    top, bottom = min(y, radius), min(height - y, radius + 1)
    region = heatmap[y - top : y + bottom, x - left : x + right]
    patch = kernel[radius - top : radius + bottom, radius - left : radius + right]
    torch.maximum(region, patch, out=region)


def generate_heatmap(boxes_xywh: torch.Tensor, feat_size: int) -> torch.Tensor:
    """Targets (B, F, F) for boxes (B, 4) given as normalised x, y, w, h in the search crop.

    The centre cell is ``round(x + w/2), round(y + h/2)`` in feature cells with torch's half-to-even
    rounding, as in the authors' code (no -0.5 cell-centre shift).
    """
    if boxes_xywh.ndim != 2 or boxes_xywh.shape[1] != 4:
        raise ValueError(f"generate_heatmap expects boxes of shape (B, 4), got {tuple(boxes_xywh.shape)}")
    cells = boxes_xywh.detach().to("cpu", torch.float32) * feat_size
    wh = cells[:, 2:]
    centers = torch.round(cells[:, :2] + wh / 2)
    maps = torch.zeros(len(cells), feat_size, feat_size)
    for i in range(len(cells)):
        radius = max(gaussian_radius(float(wh[i, 1]), float(wh[i, 0])), 0.0)
        draw_gaussian(maps[i], (int(centers[i, 0]), int(centers[i, 1])), int(radius))
    return maps.to(boxes_xywh.device)
