"""Division maps: which search tokens each GRM layer lets interact with the template, over the frame.

GRM's token division (``grm_ros.model.division``) is the one place where the tracker decides which parts of
the search region may exchange information with the template. The appendix's failure case A is a look-alike
distractor whose tokens get selected too, so seeing the division on the frame is the way to inspect it.
This module owns reading the division (forward hooks: the model is not modified), placing the search
tokens on the frame, and drawing; ``grm-track --show-division`` and the distractor benchmark
(``grm_ros.evaluation.distractors``) both use it.

A decision is class 1 (interacts) per search token: one-hot in eval, or a probability from a soft division
mode. Counting thresholds it at ``INTERACTS`` (0.5); drawing shows the raw value. A one-hot decision hides
how close each token came to the other class, so the probe also evaluates the layer's own division MLP on
the same input (``p(interact)``; a fixed-mode layer has none, and its decision stands in).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from grm_ros.model.division import division_features
from grm_ros.ros.overlay import draw_box
from grm_ros.tracking.geometry import crop_origin, crop_size
from grm_ros.tracking.state import TrackState
from grm_ros.tracking.tracker import Tracker, TrackResult

INTERACTS = 0.5  # class-1 value from which a search token counts as interacting with the template
TINT = (0, 200, 255)  # RGB of interacting tokens
TINT_ALPHA = 0.55  # tint opacity of a token with value 1
REGION_COLOR = (255, 255, 255)
TARGET_COLOR = (40, 220, 40)
DISTRACTOR_COLOR = (255, 60, 60)
PREDICTION_COLOR = (255, 220, 0)

Box = Sequence[float]
ColoredBox = tuple[Box | None, tuple[int, int, int]]


@dataclass(frozen=True)
class SearchRegion:
    """The frame square a search crop shows: top-left corner and side in frame pixels, the same integer
    window ``geometry.sample_target`` / ``crop_batch_torch`` cut before resizing it to the search size."""

    x: int
    y: int
    side: int

    @classmethod
    def around(cls, box: Box, factor: float) -> SearchRegion:
        side = crop_size(box[2:], factor)
        x, y = crop_origin(box, side)
        return cls(x, y, side)

    def token_centres(self, grid: int) -> np.ndarray:
        """(grid, grid, 2) frame (x, y) of each search token's cell centre, row-major like the tokens."""
        step = self.side / grid
        offsets = (np.arange(grid) + 0.5) * step
        xs, ys = np.meshgrid(self.x + offsets, self.y + offsets)
        return np.stack((xs, ys), axis=-1)

    def tokens_in(self, box: Box | None, grid: int) -> np.ndarray:
        """(grid, grid) bool: tokens whose cell centre lies inside the (x, y, w, h) box; none for no box."""
        if box is None or not np.isfinite(box).all():
            return np.zeros((grid, grid), bool)
        centres = self.token_centres(grid)
        x, y, w, h = (float(v) for v in box)
        cx, cy = centres[..., 0], centres[..., 1]
        return (cx >= x) & (cx < x + w) & (cy >= y) & (cy < y + h)


@dataclass(frozen=True)
class LayerDivision:
    """One dividing block on one target: (F, F) class-1 decision (0/1, or a soft mode's probability) and
    its division MLP's class-1 probability (None for a fixed-mode layer, which has no MLP)."""

    decision: np.ndarray
    mlp_probability: np.ndarray | None = None

    @property
    def interacting(self) -> np.ndarray:
        return self.decision >= INTERACTS

    @property
    def probability(self) -> np.ndarray:
        return self.decision if self.mlp_probability is None else self.mlp_probability


def class1_map(decision: torch.Tensor) -> np.ndarray:
    """(B, F, F) float class-1 value per search token from a (B, Nx, 2) decision or a (B, Nx) probability."""
    values = decision[..., 1] if decision.dim() == 3 else decision
    values = values.detach().float().cpu().numpy()
    grid = math.isqrt(values.shape[1])
    if grid * grid != values.shape[1]:
        raise ValueError(f"division decision over {values.shape[1]} search tokens is not a square grid")
    return values.reshape(values.shape[0], grid, grid)


# One target's update: the search region it looked in and block -> its division there.
Division = tuple[SearchRegion, dict[int, LayerDivision]]


class DivisionProbe:
    """A tracker's ``update`` that also returns, per target, the search region it looked in and each
    dividing block's division there: forward hooks on the engine's GRM (read only), and the tracker's rule
    for where it crops (around each target's box, wider while LOST; a frame of another size than the
    box's, where the tracker first clips the box, is not handled).

    The eager ``torch`` backend is needed: compiled, graph-captured or exported code runs no module hooks.
    This class is the one place here that reads tracker internals.
    """

    def __init__(self, tracker: Tracker) -> None:
        engine = tracker.engine
        if engine.backend != "torch" or engine.model is None:
            raise ValueError(f"division maps need the eager torch backend (module hooks), this tracker runs "
                             f"{engine.backend!r}: build it with EngineConfig(backend='torch')")
        if not any(block.attn.divide for block in engine.model.backbone.blocks):
            raise ValueError(f"GRM {tracker.net_cfg.name!r} has no dividing block: no division to show")
        self.tracker, self.model, self.net_cfg = tracker, engine.model, tracker.net_cfg
        self._maps: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}

    @contextmanager
    def attached(self) -> Iterator[DivisionProbe]:
        handles = [block.attn.register_forward_hook(self._hook(index), with_kwargs=True)
                   for index, block in enumerate(self.model.backbone.blocks) if block.attn.divide]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def _hook(self, block: int) -> Callable[..., None]:
        def record(module: nn.Module, args: tuple, kwargs: dict,
                   output: tuple[torch.Tensor, torch.Tensor | None]) -> None:
            decision, probability = class1_map(output[1]), None
            if module.divide_predict is not None:
                num_search = args[1] if len(args) > 1 else kwargs["num_search"]
                with torch.no_grad():
                    log_probs = module.divide_predict(division_features(args[0], num_search))
                probability = class1_map(log_probs.exp())
            self._maps[block] = decision, probability
        return record

    def region(self, box: Box, state: TrackState) -> SearchRegion:
        return SearchRegion.around(box, self.tracker.search_factor(state))

    def update(self, frame: np.ndarray | torch.Tensor) -> tuple[list[TrackResult], dict[int, Division]]:
        """``tracker.update(frame)``, and target id -> (search region, block -> division) of that update
        (inside ``attached()``). Empty when the batch failed and the tracker stepped targets one by one
        (the last forward then holds one target only)."""
        targets = self.tracker.targets
        ids = sorted(targets)  # the tracker's batch order
        regions = [self.region(targets[i].box, targets[i].state) for i in ids]
        self._maps = {}
        results = self.tracker.update(frame)
        if ids and not self._maps:
            raise RuntimeError("no division decision was recorded: are the hooks attached (attached())?")
        maps, self._maps = self._maps, {}
        if any(d.shape[0] < len(ids) for d, _ in maps.values()):
            return results, {}
        return results, {i: (region, {block: LayerDivision(d[row], None if p is None else p[row])
                                      for block, (d, p) in sorted(maps.items())})
                         for row, (i, region) in enumerate(zip(ids, regions, strict=True))}


def _paint(frame_rgb: np.ndarray, region: SearchRegion, colors: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """A copy of the frame with token (r, c) of the region blended with ``colors[r, c]`` (RGB) at opacity
    ``alpha[r, c]``."""
    canvas = np.array(frame_rgb, dtype=np.uint8, copy=True)
    side = (region.side, region.side)
    rgba = np.dstack((colors.astype(np.float32), alpha.astype(np.float32)))
    rgba = cv2.resize(rgba, side, interpolation=cv2.INTER_NEAREST)
    height, width = canvas.shape[:2]
    x0, y0 = max(region.x, 0), max(region.y, 0)
    x1, y1 = min(region.x + region.side, width), min(region.y + region.side, height)
    if x1 > x0 and y1 > y0:
        cut = rgba[y0 - region.y : y1 - region.y, x0 - region.x : x1 - region.x]
        a = cut[..., 3:]
        patch = canvas[y0:y1, x0:x1].astype(np.float32)
        canvas[y0:y1, x0:x1] = np.round(patch * (1 - a) + cut[..., :3] * a).astype(np.uint8)
    return canvas


def draw_decision(frame_rgb: np.ndarray, region: SearchRegion, decision: np.ndarray) -> np.ndarray:
    """Interacting tokens tinted (opacity follows a soft decision's value)."""
    colors = np.broadcast_to(np.float32(TINT), (*decision.shape, 3))
    return _paint(frame_rgb, region, colors, np.clip(decision, 0, 1) * TINT_ALPHA)


def draw_probability(frame_rgb: np.ndarray, region: SearchRegion, probability: np.ndarray) -> np.ndarray:
    """p(interact) as a heat map stretched over this map's own range (blue low, red high): the ranking of
    the tokens, which a decision far from 0.5 everywhere does not show."""
    low, high = float(probability.min()), float(probability.max())
    scaled = np.uint8(np.round(255 * (probability - low) / max(high - low, 1e-6)))
    colors = cv2.applyColorMap(scaled, cv2.COLORMAP_TURBO)[..., ::-1]
    return _paint(frame_rgb, region, colors, np.full(probability.shape, TINT_ALPHA))


def annotate(image: np.ndarray, region: SearchRegion, boxes: Sequence[ColoredBox] = (),
             caption: str = "", thickness: int = 2) -> np.ndarray:
    """``image`` (in place) with the search region outlined, ``boxes`` as (box, colour) pairs (None or
    non-finite skipped) and ``caption`` top left."""
    draw_box(image, (region.x, region.y, region.side, region.side), REGION_COLOR, thickness=1)
    for box, color in boxes:
        if box is not None and np.isfinite(box).all():
            draw_box(image, box, color, thickness=thickness)
    return _caption(image, caption) if caption else image


def _caption(canvas: np.ndarray, text: str) -> np.ndarray:
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    cv2.rectangle(canvas, (0, 0), (w + 8, h + base + 8), (0, 0, 0), -1)
    cv2.putText(canvas, text, (4, h + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def describe(block: int, layer: LayerDivision) -> str:
    p = layer.probability
    return (f"block {block}: {int(layer.interacting.sum())}/{layer.decision.size} interact, "
            f"p {p.min():.2f}-{p.max():.2f}")


def region_view(image: np.ndarray, region: SearchRegion, margin: float = 0.1, size: int = 320) -> np.ndarray:
    """The search region (plus ``margin`` of its side) cut from ``image`` at ``size`` px, black off-frame: a
    small target's tokens are unreadable at frame scale."""
    pad = round(region.side * margin)
    x, y, side = region.x - pad, region.y - pad, region.side + 2 * pad
    view = np.zeros((side, side, 3), np.uint8)
    height, width = image.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + side, width), min(y + side, height)
    if x1 > x0 and y1 > y0:
        view[y0 - y : y1 - y, x0 - x : x1 - x] = image[y0:y1, x0:x1]
    return cv2.resize(view, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)


def crossing_montage(frame_rgb: np.ndarray, region: SearchRegion, layers: dict[int, LayerDivision],
                     boxes: Sequence[ColoredBox], title: str, size: int = 320) -> np.ndarray:
    """Top row: the frame with the boxes, then per dividing block its decision over the search region;
    bottom row: the same blocks' p(interact) heat maps (``draw_probability``)."""
    height, width = frame_rgb.shape[:2]
    overview = annotate(np.array(frame_rgb, copy=True), region, boxes, title)
    overview = cv2.resize(overview, (round(width * size / height), size), interpolation=cv2.INTER_AREA)
    decisions, probabilities = [overview], [_legend(overview.shape)]
    thickness = max(1, round(2.4 * region.side / size))  # about 2 px once the view is resized to ``size``
    for block, layer in layers.items():
        drawn = annotate(draw_decision(frame_rgb, region, layer.decision), region, boxes, thickness=thickness)
        decisions.append(_caption(region_view(drawn, region, size=size), describe(block, layer)))
        drawn = annotate(draw_probability(frame_rgb, region, layer.probability), region, boxes,
                         thickness=thickness)
        probabilities.append(_caption(region_view(drawn, region, size=size), f"block {block}: p(interact)"))
    rows = [decisions, probabilities]
    gap = np.full((size, 4, 3), 255, np.uint8)
    lines = [np.concatenate([p for panel in row for p in (panel, gap)][:-1], axis=1) for row in rows]
    return np.concatenate([lines[0], np.full((4, lines[0].shape[1], 3), 255, np.uint8), lines[1]], axis=0)


def _legend(shape: tuple[int, ...]) -> np.ndarray:
    panel = np.zeros(shape, np.uint8)
    lines = [("top: tinted tokens interact with the template", TINT),
             ("bottom: p(interact), blue low .. red high,", (255, 255, 255)),
             ("  each map stretched to its own range", (255, 255, 255)),
             ("target (ground truth)", TARGET_COLOR), ("distractor", DISTRACTOR_COLOR),
             ("tracker box", PREDICTION_COLOR), ("search region", REGION_COLOR)]
    for row, (text, color) in enumerate(lines):
        cv2.putText(panel, text, (10, 30 + 26 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.55, color, 1, cv2.LINE_AA)
    return panel


def write_rgb(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")
    return path


class OverlayWriter:
    """``grm-track --show-division DIR``: per frame and dividing block, at frame size, the decision
    ``<frame:05d>_block<b>.png`` and, for a block with a division MLP, its p(interact) ``..._p.png``
    (frame numbers from 1 as in the result file; frame 1 has no forward, so no overlay)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)

    def write(self, frame_number: int, frame_rgb: np.ndarray, region: SearchRegion,
              layers: dict[int, LayerDivision], box: Box) -> list[Path]:
        written, boxes = [], [(box, PREDICTION_COLOR)]
        for block, layer in layers.items():
            caption = f"frame {frame_number} {describe(block, layer)}"
            images = {"": draw_decision(frame_rgb, region, layer.decision)}
            if layer.mlp_probability is not None:
                images["_p"] = draw_probability(frame_rgb, region, layer.mlp_probability)
            for suffix, image in images.items():
                path = self.out_dir / f"{frame_number:05d}_block{block}{suffix}.png"
                written.append(write_rgb(path, annotate(image, region, boxes, caption)))
        return written


@contextmanager
def division_overlays(tracker: Tracker, out_dir: Path | None) -> Iterator[Callable[..., list[TrackResult]]]:
    """``tracker.update`` that, with ``out_dir``, also writes every target's overlays there
    (``OverlayWriter``; numpy frames in the tracker's colour order, the frame after ``start`` numbered 2;
    several targets go to ``<out_dir>/target<id>/``)."""
    if out_dir is None:
        yield tracker.update
        return
    probe, frame_number = DivisionProbe(tracker), 1

    def update(frame: np.ndarray) -> list[TrackResult]:
        nonlocal frame_number
        frame_number += 1
        results, divisions = probe.update(frame)
        rgb = frame[..., ::-1] if tracker.config.color_order == "bgr" else frame
        for result in results:
            if result.target_id in divisions:
                region, layers = divisions[result.target_id]
                folder = Path(out_dir) if len(divisions) == 1 else Path(out_dir) / f"target{result.target_id}"
                OverlayWriter(folder).write(frame_number, rgb, region, layers, result.box)
        return results

    with probe.attached():
        yield update
