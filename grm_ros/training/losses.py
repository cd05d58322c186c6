"""The authors' tracking loss: 2·GIoU + 5·L1 + 1·focal (FACTS §11), and optionally appendix C.1's
supervision of the token division by the ground-truth box.

Boxes live in normalised search-crop coordinates. Predictions come as (cx, cy, w, h); ground truth as
(x, y, w, h) and is clamped to [0, 1] after conversion to corners, exactly like the authors' actor, so
a target that sticks out of the crop is supervised with its visible part.

C.1 (off unless ``LossWeights.division`` > 0): every division MLP's log-probabilities are pulled, by the mean
negative log-likelihood over the search tokens, towards "class 1 iff the token's cell overlaps the box".
The weight is constant over the run (one schedule, the same in every stage of a recipe). Negative pairs
are left out: their box is another object's, and labelling all their tokens class 0 would ask the MLP,
from a token and a max-pooled template alone, to tell the target from a look-alike, which is the score
map's job (the tracking loss already pushes it to zero there).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grm_ros.training.heatmap import generate_heatmap


@dataclass(frozen=True)
class LossWeights:
    """``division`` weighs the C.1 loss (0: off); ``division_layers`` limits it to those block indices
    (empty: every block with a division MLP)."""

    giou: float = 2.0
    l1: float = 5.0
    focal: float = 1.0
    division: float = 0.0
    division_layers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.division < 0:
            raise ValueError(f"the division loss weight must be >= 0, got {self.division}")
        layers = tuple(self.division_layers)
        if any(not isinstance(i, int) or i < 1 for i in layers):
            raise ValueError(f"division_layers are block indices >= 1 (block 0 never divides), got {layers}")
        object.__setattr__(self, "division_layers", layers)


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)


def xywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    x, y, w, h = boxes.unbind(-1)
    return torch.stack((x, y, x + w, y + h), dim=-1)


def generalized_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Element-wise GIoU and IoU of two (N, 4) xyxy sets (not the pairwise N×M matrix)."""
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    inter_wh = (torch.min(boxes1[:, 2:], boxes2[:, 2:]) - torch.max(boxes1[:, :2], boxes2[:, :2])).clamp(
        min=0
    )
    inter = inter_wh[:, 0] * inter_wh[:, 1]
    union = area1 + area2 - inter
    iou = inter / union
    hull_wh = (torch.max(boxes1[:, 2:], boxes2[:, 2:]) - torch.min(boxes1[:, :2], boxes2[:, :2])).clamp(min=0)
    hull = hull_wh[:, 0] * hull_wh[:, 1]
    return iou - (hull - union) / hull, iou


def giou_loss(pred_xyxy: torch.Tensor, gt_xyxy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (1 - GIoU) and mean IoU.

    Degenerate boxes (x2 < x1 or y2 < y1) make the authors' GIoU assert fire, which their actor
    catches and replaces by a zero loss; we do the same instead of raising mid-training.
    """
    if not (_well_formed(pred_xyxy) and _well_formed(gt_xyxy)):
        zero = pred_xyxy.sum() * 0.0
        return zero, zero.detach()
    giou, iou = generalized_iou(pred_xyxy, gt_xyxy)
    return (1 - giou).mean(), iou.mean().detach()


def _well_formed(boxes: torch.Tensor) -> bool:
    return bool(torch.isfinite(boxes).all() and (boxes[:, 2:] >= boxes[:, :2]).all())


def focal_loss(
    pred: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0
) -> torch.Tensor:
    """CenterNet focal loss, summed over the batch and divided by the number of positives (cells == 1)."""
    if pred.shape != target.shape:
        raise ValueError(
            f"focal_loss: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ"
        )
    positive = target.eq(1).float()
    negative = target.lt(1).float()
    pred = pred.clamp(min=1e-12)
    pos_loss = (torch.log(pred) * (1 - pred) ** alpha * positive).sum()
    neg_loss = (torch.log(1 - pred) * pred**alpha * (1 - target) ** beta * negative).sum()
    num_pos = positive.sum()
    if num_pos == 0:
        return -neg_loss
    return -(pos_loss + neg_loss) / num_pos


def division_target(gt_xywh: torch.Tensor, side: int) -> torch.Tensor:
    """(B, side*side) long: 1 where a search token's cell overlaps the box with positive area, row-major
    like the tokens. Token (r, c) covers [c, c+1) x [r, r+1) / side of the crop."""
    x1, y1, x2, y2 = xywh_to_xyxy(gt_xywh).clamp(0.0, 1.0).mul(side).unbind(-1)
    edges = torch.arange(side, device=gt_xywh.device, dtype=gt_xywh.dtype)
    cols = (edges[None] < x2[:, None]) & (edges[None] + 1 > x1[:, None])
    rows = (edges[None] < y2[:, None]) & (edges[None] + 1 > y1[:, None])
    return (rows[:, :, None] & cols[:, None, :]).flatten(1).long()


def division_loss(log_probs: dict[int, torch.Tensor], gt_xywh: torch.Tensor, layers: tuple[int, ...] = (),
                  present: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the supervised blocks of the token-averaged NLL of ``division_target`` (0 when perfect).

    ``log_probs`` maps block index -> (B, Nx, 2) (the forward dict's ``division_log_probs``); ``layers``
    picks blocks (empty: all); pairs with ``present`` 0 are left out (see the module docstring).
    """
    chosen = layers or tuple(sorted(log_probs))
    missing = sorted(set(chosen) - set(log_probs))
    if missing:
        raise ValueError(f"division loss: block(s) {missing} have no division MLP (fixed mode, or not a "
                         f"dividing block); blocks with one: {sorted(log_probs)}")
    if not chosen:
        raise ValueError("division loss: the model has no division MLP to supervise")
    keep = gt_xywh.new_ones(len(gt_xywh), dtype=torch.bool) if present is None else present > 0
    first = log_probs[chosen[0]]
    if not keep.any():
        return first.sum() * 0.0
    target = division_target(gt_xywh[keep], round(first.shape[1] ** 0.5))
    losses = [torch.nn.functional.nll_loss(log_probs[i][keep].flatten(0, 1).float(), target.flatten())
              for i in chosen]
    return torch.stack(losses).mean()


def tracking_loss(
    outputs: dict[str, torch.Tensor],
    gt_xywh: torch.Tensor,
    weights: LossWeights = LossWeights(),
    present: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its logged components for one batch.

    ``outputs`` is the GRM forward dict (``pred_boxes`` (B,1,4) cxcywh, ``score_map`` (B,1,F,F));
    ``gt_xywh`` (B, 4) is the target box in normalised search-crop coordinates. ``present`` (B,) marks the
    pairs whose search crop holds the target; the others are negative pairs (another object): their score
    map is pushed to zero everywhere and their box is not supervised. None means all present (the
    authors' recipe has no negative pairs). ``weights.division`` > 0 adds the C.1 loss (logged "division").
    """
    pred_boxes = outputs["pred_boxes"]
    score_map = outputs["score_map"]
    if gt_xywh.ndim != 2 or gt_xywh.shape != (pred_boxes.shape[0], 4):
        raise ValueError(
            f"tracking_loss: gt boxes must be ({pred_boxes.shape[0]}, 4), got {tuple(gt_xywh.shape)}"
        )
    if not torch.isfinite(pred_boxes).all():
        raise ValueError("tracking_loss: the network predicted non-finite boxes (diverged training?)")
    num_queries = pred_boxes.shape[1]
    keep = gt_xywh.new_ones(len(gt_xywh), dtype=torch.bool) if present is None else present > 0
    pred_xyxy = cxcywh_to_xyxy(pred_boxes[keep]).reshape(-1, 4)
    gt_xyxy = xywh_to_xyxy(gt_xywh[keep])[:, None, :].expand(-1, num_queries, -1).reshape(-1, 4)
    gt_xyxy = gt_xyxy.clamp(0.0, 1.0)

    if len(pred_xyxy):
        giou, mean_iou = giou_loss(pred_xyxy, gt_xyxy)
        l1 = torch.nn.functional.l1_loss(pred_xyxy, gt_xyxy)
    else:
        giou = l1 = pred_boxes.sum() * 0.0
        mean_iou = giou.detach()
    heatmap = (generate_heatmap(gt_xywh, score_map.shape[-1]) * keep[:, None, None]).unsqueeze(1)
    focal = focal_loss(score_map, heatmap)
    total = weights.giou * giou + weights.l1 * l1 + weights.focal * focal
    stats = {
        "giou": float(giou.detach()),
        "l1": float(l1.detach()),
        "focal": float(focal.detach()),
        "iou": float(mean_iou),
    }
    if weights.division:
        if "division_log_probs" not in outputs:
            raise ValueError("tracking_loss: the division loss needs division_log_probs (a training forward)")
        division = division_loss(outputs["division_log_probs"], gt_xywh, weights.division_layers, present)
        total = total + weights.division * division
        stats["division"] = float(division.detach())
    return total, {"loss": float(total.detach()), **stats}
