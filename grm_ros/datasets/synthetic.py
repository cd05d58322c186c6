"""Synthetic tracking videos: photo cut-outs moving over photo backgrounds.

Every sequence is a pure function of (split, seed, index): its trajectories and ground truth are computed
up front, and any frame can be rendered on its own, so the training sampler can draw two frames of a
long video without rendering the rest. What the videos contain is chosen to exercise what GRM has to
learn: smooth motion with scale and aspect change, camera pan/zoom, motion blur and defocus, global
and object illumination change, partial and full occlusion by panels and objects, and look-alike
distractors (recoloured copies or siblings of the target) crossing it — the failure case of the
authors' appendix.
"""

from __future__ import annotations

import functools
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from grm_ros.datasets.materials import SPLITS, Material, discover_material, load_background, load_cutout

NOISE_MARGIN = 64
GRID = 16  # visibility is measured on GRID x GRID points of the target box
FRONT = 1.0
BEHIND = -1.0


@dataclass(frozen=True)
class SynthParams:
    width: int = 640
    height: int = 360
    length: int = 100
    min_target: float = 14.0  # sqrt(w*h) of the target at the first frame, px
    max_target: float = 130.0
    p_crossing_distractor: float = 0.6
    max_wandering_distractors: int = 2
    p_occluder: float = 0.5
    p_camera_motion: float = 0.7
    p_motion_blur: float = 0.5
    p_defocus: float = 0.2
    p_illumination: float = 0.6
    p_noise: float = 0.5
    absent_below: float = 0.15  # visible fraction under which the target counts as absent (NaN box)

    def __post_init__(self) -> None:
        if self.width < 64 or self.height < 64 or self.length < 2:
            raise ValueError(f"SynthParams: frames must be >= 64x64 and length >= 2, got {self}")
        if not 0 < self.min_target <= self.max_target:
            raise ValueError(f"SynthParams: need 0 < min_target <= max_target, got {self}")


@dataclass
class _Layer:
    """One sprite over the whole video: centre and size per frame, drawn in depth order."""

    sprite: np.ndarray  # RGBA uint8, tight to the alpha box
    center: np.ndarray  # (N, 2) px
    size: np.ndarray  # (N, 2) w, h px
    depth: float
    gain: np.ndarray  # (N,) brightness multiplier of this sprite
    motion_blur: bool = False
    velocity: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    role: str = "target"  # or "crossing" / "wandering" (look-alike distractors), "occluder"


@dataclass(frozen=True)
class Distractor:
    """A look-alike's boxes per frame (x, y, w, h clipped to the frame, NaN rows where it is off-frame):
    the ground truth the distractor benchmark counts search tokens against."""

    role: str  # "crossing" (sweeps across the target once) or "wandering"
    boxes: np.ndarray
    in_front: bool  # drawn over the target, so it occludes where they overlap


def _ou_path(
    rng: np.random.Generator, n: int, start: np.ndarray, speed: float, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Smooth 2-D path: Ornstein-Uhlenbeck velocity, reflected at the bounds."""
    inertia = rng.uniform(0.85, 0.97)
    kick = speed * math.sqrt(1 - inertia**2)
    vel = (rng.normal(size=2) * speed).tolist()
    noise = (rng.normal(size=(n, 2)) * kick).tolist()
    pos = [float(v) for v in start]
    low, high = [float(v) for v in lo], [float(v) for v in hi]
    path = []
    for t in range(n):
        path.append(tuple(pos))
        for axis in range(2):
            vel[axis] = inertia * vel[axis] + noise[t][axis]
            pos[axis] += vel[axis]
            if not low[axis] <= pos[axis] <= high[axis]:
                bound = low[axis] if pos[axis] < low[axis] else high[axis]
                pos[axis] = min(max(2 * bound - pos[axis], low[axis]), high[axis])
                vel[axis] = -vel[axis]
    return np.array(path)


def _smooth_walk(rng: np.random.Generator, n: int, step: float) -> np.ndarray:
    """1-D random walk with smoothed increments, starting at 0."""
    increments = np.convolve(rng.normal(size=n + 8) * step, np.ones(9) / 9, mode="valid")[:n]
    return np.concatenate(([0.0], np.cumsum(increments[1:])))


def _crossing_offset(rng: np.random.Generator, n: int, size: float, duration: tuple[int, int]) -> np.ndarray:
    """Offset from the target that sweeps across it once, with a small miss distance."""
    t_cross = rng.uniform(0.15, 0.85) * n
    frames = rng.uniform(*duration)
    reach = rng.uniform(1.2, 2.5) * size
    angle = rng.uniform(0, 2 * np.pi)
    direction = np.array([math.cos(angle), math.sin(angle)])
    perpendicular = np.array([-direction[1], direction[0]])
    miss = rng.uniform(-0.5, 0.5) * size
    t = np.arange(n)[:, None]
    return direction * (t - t_cross) * (2 * reach / frames) + perpendicular * miss


def _recolor(rng: np.random.Generator, sprite: np.ndarray) -> np.ndarray:
    """A look-alike: hue rotated a little, saturation and value rescaled, maybe mirrored."""
    hsv = cv2.cvtColor(np.ascontiguousarray(sprite[:, :, :3]), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[:, :, 0] = (hsv[:, :, 0] + rng.uniform(-12, 12)) % 180
    hsv[:, :, 1:] *= rng.uniform(0.85, 1.15, size=2)
    rgb = cv2.cvtColor(np.clip(hsv, 0, [179, 255, 255]).astype(np.uint8), cv2.COLOR_HSV2RGB)
    out = np.dstack((rgb, sprite[:, :, 3]))
    return np.ascontiguousarray(out[:, ::-1]) if rng.random() < 0.5 else out


def _sample_alpha(layer: _Layer, points: np.ndarray) -> np.ndarray:
    """Sprite alpha (0..255) at frame points (N, P, 2); 0 outside the sprite's box."""
    top_left = layer.center - layer.size / 2
    rel = (points - top_left[:, None, :]) / np.maximum(layer.size[:, None, :], 1e-6)
    inside = np.all((rel >= 0) & (rel < 1), axis=2)
    sh, sw = layer.sprite.shape[:2]
    col = np.clip((rel[..., 0] * sw).astype(int), 0, sw - 1)
    row = np.clip((rel[..., 1] * sh).astype(int), 0, sh - 1)
    return np.where(inside, layer.sprite[row, col, 3], 0)


class SyntheticVideo:
    """One generated video. ``gt`` (N, 4) x, y, w, h px, NaN rows where the target is absent."""

    def __init__(
        self,
        index: int,
        seed: int = 0,
        split: str = "train",
        params: SynthParams | None = None,
        material: Material | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown synthetic split {split!r}; expected one of {SPLITS}")
        self.index, self.seed, self.split = index, seed, split
        self.params = params or SynthParams()
        self.material = material or discover_material(split)
        self.name = f"synth_{split}_s{seed}_{index:05d}"
        self._key = [seed, SPLITS.index(split), index]
        rng = np.random.default_rng(self._key)
        self._build(rng)

    def __len__(self) -> int:
        return self.params.length

    @property
    def visible(self) -> np.ndarray:
        """Frames with a ground-truth box (same meaning as ``datasets.Sequence.visible``)."""
        return np.isfinite(self.gt).all(axis=1)

    # ---------------------------------------------------------------- construction
    def _pick_cutout(
        self, rng: np.random.Generator, pool: tuple[str, ...] | None = None
    ) -> tuple[str, np.ndarray]:
        pool = pool or self.material.cutouts
        for _ in range(20):
            asset = pool[int(rng.integers(len(pool)))]
            try:
                return asset, load_cutout(asset)
            except ValueError:
                continue
        raise ValueError(f"no usable cut-out among {len(pool)} candidates (first: {pool[0]})")

    def _build(self, rng: np.random.Generator) -> None:
        p = self.params
        n, frame_wh = p.length, np.array([p.width, p.height], float)
        self._background = self.material.backgrounds[int(rng.integers(len(self.material.backgrounds)))]
        self._build_camera(rng)

        target_asset, sprite = self._pick_cutout(rng)
        aspect0 = sprite.shape[1] / sprite.shape[0]
        size0 = math.exp(rng.uniform(math.log(p.min_target), math.log(p.max_target)))
        log_size = np.clip(
            math.log(size0) + _smooth_walk(rng, n, rng.uniform(0.003, 0.03)),
            math.log(max(6.0, p.min_target / 2)),
            math.log(0.8 * p.height),
        )
        aspect = aspect0 * np.exp(np.clip(_smooth_walk(rng, n, 0.01), -0.3, 0.3))
        scale = np.exp(log_size)
        size = np.stack((scale * np.sqrt(aspect), scale / np.sqrt(aspect)), axis=1)
        margin = 0.05 * frame_wh
        start = rng.uniform(0.2, 0.8, size=2) * frame_wh
        speed = math.exp(rng.uniform(math.log(0.3), math.log(10.0)))
        center = _ou_path(rng, n, start, speed, margin, frame_wh - margin)
        gain = np.ones(n)
        if rng.random() < p.p_illumination:
            gain = np.exp(np.clip(_smooth_walk(rng, n, 0.02), -0.5, 0.4))
        target = _Layer(
            sprite, center, size, 0.0, gain, rng.random() < p.p_motion_blur, np.gradient(center, axis=0)
        )
        self._target = target
        layers = [target]

        siblings = _cutout_groups(self.material.cutouts)[os.path.dirname(target_asset)]
        if rng.random() < p.p_crossing_distractor:
            offset = _crossing_offset(rng, n, float(scale.mean()), (8, 40))
            look = self._lookalike(rng, sprite, siblings)
            rel = rng.uniform(0.8, 1.2)
            depth = FRONT if rng.random() < 0.5 else BEHIND
            layers.append(_Layer(look, center + offset, size * rel, depth, gain.copy(), role="crossing"))
        for _ in range(int(rng.integers(0, p.max_wandering_distractors + 1))):
            look = self._lookalike(rng, sprite, siblings)
            path = _ou_path(
                rng,
                n,
                rng.uniform(0.1, 0.9, 2) * frame_wh,
                speed * rng.uniform(0.5, 1.5),
                margin,
                frame_wh - margin,
            )
            depth = FRONT * 0.5 if rng.random() < 0.3 else BEHIND * 0.5
            rel = rng.uniform(0.7, 1.3)
            layers.append(_Layer(look, path, size * rel, depth, np.ones(n), role="wandering"))
        if rng.random() < p.p_occluder:
            layers.append(self._occluder(rng, center, float(scale.mean())))
        self._layers = sorted(layers, key=lambda layer: layer.depth)
        self._build_frame_effects(rng)
        self._compute_ground_truth()

    def _lookalike(
        self, rng: np.random.Generator, sprite: np.ndarray, siblings: tuple[str, ...]
    ) -> np.ndarray:
        if len(siblings) > 1 and rng.random() < 0.35:
            return self._pick_cutout(rng, siblings)[1]
        return _recolor(rng, sprite)

    def _occluder(self, rng: np.random.Generator, target_center: np.ndarray, target_size: float) -> _Layer:
        """A panel cut from the background photo, or a big object, crossing in front of the target."""
        n = self.params.length
        side = target_size * rng.uniform(0.8, 2.5)
        if rng.random() < 0.5:
            _, sprite = self._pick_cutout(rng)
            aspect = sprite.shape[1] / sprite.shape[0]
        else:
            bg = load_background(self._background)
            aspect = rng.uniform(0.3, 3.0)
            ph = int(min(bg.shape[0] - 1, max(8, rng.uniform(0.05, 0.3) * bg.shape[0])))
            pw = int(min(bg.shape[1] - 1, max(8, ph * aspect)))
            y0, x0 = int(rng.integers(0, bg.shape[0] - ph)), int(rng.integers(0, bg.shape[1] - pw))
            patch = bg[y0 : y0 + ph, x0 : x0 + pw]
            sprite = np.dstack((patch, np.full(patch.shape[:2], 255, np.uint8)))
            aspect = pw / ph
        size = np.tile([side * math.sqrt(aspect), side / math.sqrt(aspect)], (n, 1))
        offset = _crossing_offset(rng, n, target_size + side / 2, (10, 50))
        return _Layer(sprite, target_center + offset, size, 2 * FRONT, np.full(n, rng.uniform(0.7, 1.2)),
                      role="occluder")

    def _build_camera(self, rng: np.random.Generator) -> None:
        """Background view window (centre, width in background px) per frame: pan and zoom."""
        p = self.params
        bg_h, bg_w = load_background(self._background).shape[:2]
        max_view = min(bg_w, bg_h * p.width / p.height)
        n = p.length
        view_w = max_view * rng.uniform(0.4, 1.0)
        if rng.random() < p.p_camera_motion:
            widths = np.clip(view_w * np.exp(_smooth_walk(rng, n, 0.01)), 0.25 * max_view, max_view)
            speed = rng.uniform(0.2, 4.0) * max_view / p.width
        else:
            widths = np.full(n, view_w)
            speed = 0.0
        half = np.stack((widths / 2, widths / 2 * p.height / p.width), axis=1)
        lo, hi = half.max(axis=0), np.array([bg_w, bg_h]) - half.max(axis=0)
        start = rng.uniform(lo, np.maximum(lo, hi))
        centers = (
            _ou_path(rng, n, start, speed, lo, np.maximum(lo, hi)) if speed > 0 else np.tile(start, (n, 1))
        )
        self._view_center, self._view_width = centers, widths

    def _build_frame_effects(self, rng: np.random.Generator) -> None:
        p, n = self.params, self.params.length
        self._frame_gain = np.ones(n)
        self._color_cast = np.ones(3)
        if rng.random() < p.p_illumination:
            self._frame_gain = np.exp(np.clip(_smooth_walk(rng, n, 0.015), -0.6, 0.4))
            if rng.random() < 0.3:  # a light switched on or off
                step_at = int(rng.integers(1, n))
                self._frame_gain[step_at:] *= rng.choice([0.55, 1.6])
            self._color_cast = rng.uniform(0.85, 1.15, size=3)
        self._defocus = np.zeros(n)
        if rng.random() < p.p_defocus:
            a = int(rng.integers(0, n))
            self._defocus[a : a + int(rng.integers(5, 30))] = rng.uniform(1.0, 3.0)
        self._noise_sigma = rng.uniform(1.0, 4.0) if rng.random() < p.p_noise else 0.0

    def _compute_ground_truth(self) -> None:
        p, t = self.params, self._target
        cells = (np.arange(GRID) + 0.5) / GRID
        grid = np.stack(np.meshgrid(cells, cells), axis=-1).reshape(-1, 2)
        points = (t.center - t.size / 2)[:, None, :] + grid[None] * t.size[:, None, :]
        own = _sample_alpha(t, points) > 127
        in_frame = np.all((points >= 0) & (points < [p.width, p.height]), axis=2)
        covered = np.zeros_like(own)
        for layer in self._layers:
            if layer.depth > 0:
                covered |= _sample_alpha(layer, points) > 127
        self.visible_fraction = (own & in_frame & ~covered).sum(axis=1) / np.maximum(own.sum(axis=1), 1)
        gt = self._frame_boxes(t)
        gt[self.visible_fraction < p.absent_below] = np.nan
        self.gt = gt

    def _frame_boxes(self, layer: _Layer) -> np.ndarray:
        """(N, 4) x, y, w, h of the layer's sprite box per frame, clipped to the frame."""
        p = self.params
        x0 = np.clip(layer.center[:, 0] - layer.size[:, 0] / 2, 0, p.width)
        y0 = np.clip(layer.center[:, 1] - layer.size[:, 1] / 2, 0, p.height)
        x1 = np.clip(layer.center[:, 0] + layer.size[:, 0] / 2, 0, p.width)
        y1 = np.clip(layer.center[:, 1] + layer.size[:, 1] / 2, 0, p.height)
        return np.stack((x0, y0, x1 - x0, y1 - y0), axis=1)

    def distractors(self) -> list[Distractor]:
        """The look-alike distractors, crossing one first."""
        out = []
        for layer in sorted(self._layers, key=lambda la: la.role != "crossing"):
            if layer.role in ("crossing", "wandering"):
                boxes = self._frame_boxes(layer)
                boxes[(boxes[:, 2] <= 0) | (boxes[:, 3] <= 0)] = np.nan
                out.append(Distractor(layer.role, boxes, layer.depth > self._target.depth))
        return out

    # ---------------------------------------------------------------- rendering
    def frame(self, k: int) -> np.ndarray:
        """Frame ``k`` as RGB uint8 (H, W, 3)."""
        p = self.params
        if not 0 <= k < p.length:
            raise IndexError(f"{self.name}: frame {k} out of range 0..{p.length - 1}")
        bg = load_background(self._background)
        scale = p.width / self._view_width[k]
        cx, cy = self._view_center[k]
        warp = np.array([[scale, 0, p.width / 2 - scale * cx], [0, scale, p.height / 2 - scale * cy]])
        canvas = cv2.warpAffine(
            bg, warp, (p.width, p.height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        # Lighting is linear, so it is applied per layer (the background here, sprites while compositing):
        # the full frame then stays uint8 and only sprite regions are handled in float.
        gain = self._frame_gain[k] * self._color_cast
        canvas = cv2.multiply(canvas, (*gain.tolist(), 0.0))
        for layer in self._layers:
            _composite(canvas, layer, k, gain)
        if self._defocus[k] > 0:
            canvas = cv2.GaussianBlur(canvas, (0, 0), float(self._defocus[k]))
        if self._noise_sigma > 0:
            tile = _noise_tile(p.height, p.width)
            dy, dx = np.random.default_rng([*self._key, k]).integers(0, NOISE_MARGIN, size=2)
            noise = tile[dy : dy + p.height, dx : dx + p.width] * np.float32(self._noise_sigma)
            canvas = cv2.add(canvas, noise, dtype=cv2.CV_8U)
        return canvas


@functools.lru_cache(maxsize=4)
def _cutout_groups(cutouts: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Cut-outs by folder: tuxpaint groups similar objects (fruit, birds...), the best look-alikes."""
    groups: dict[str, list[str]] = defaultdict(list)
    for asset in cutouts:
        groups[os.path.dirname(asset)].append(asset)
    return defaultdict(tuple, {k: tuple(v) for k, v in groups.items()})


@functools.lru_cache(maxsize=4)
def _noise_tile(height: int, width: int) -> np.ndarray:
    """Fixed Gaussian noise, sliced at a per-frame offset: drawing fresh noise per frame costs more than
    rendering the frame."""
    rng = np.random.default_rng(NOISE_MARGIN)
    return rng.standard_normal((height + NOISE_MARGIN, width + NOISE_MARGIN, 3), dtype=np.float32)


def _composite(canvas: np.ndarray, layer: _Layer, k: int, gain: np.ndarray) -> None:
    """Alpha-blend the sprite into uint8 ``canvas`` so its edges land exactly on the box of frame ``k``;
    ``gain`` (3,) is the frame's lighting."""
    w, h = layer.size[k]
    if w < 1 or h < 1:
        return
    sprite = layer.sprite
    if w < 0.6 * sprite.shape[1] or h < 0.6 * sprite.shape[0]:  # pre-shrink: warpAffine alone aliases
        sprite = cv2.resize(
            sprite, (max(2, math.ceil(w)), max(2, math.ceil(h))), interpolation=cv2.INTER_AREA
        )
    sx, sy = w / sprite.shape[1], h / sprite.shape[0]
    blur = 0
    if layer.motion_blur and len(layer.velocity):
        blur = int(min(21, np.hypot(*layer.velocity[k])))
    pad = blur + 2
    x0, y0 = layer.center[k] - (w / 2, h / 2)
    rx0, ry0 = math.floor(x0) - pad, math.floor(y0) - pad
    rx1, ry1 = math.ceil(x0 + w) + pad, math.ceil(y0 + h) + pad
    warp = np.array([[sx, 0, x0 + 0.5 * sx - 0.5 - rx0], [0, sy, y0 + 0.5 * sy - 0.5 - ry0]])
    rgba = cv2.warpAffine(
        sprite,
        warp,
        (rx1 - rx0, ry1 - ry0),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0, 0),
    ).astype(np.float32)
    alpha = rgba[:, :, 3:] / 255
    premultiplied = rgba[:, :, :3] * alpha * (layer.gain[k] * gain).astype(np.float32)
    if blur >= 2:
        kernel = _line_kernel(blur, layer.velocity[k])
        premultiplied = cv2.filter2D(premultiplied, -1, kernel)
        alpha = cv2.filter2D(alpha, -1, kernel)[:, :, None]
    cx0, cy0 = max(rx0, 0), max(ry0, 0)
    cx1, cy1 = min(rx1, canvas.shape[1]), min(ry1, canvas.shape[0])
    if cx1 <= cx0 or cy1 <= cy0:
        return
    src = np.s_[cy0 - ry0 : cy1 - ry0, cx0 - rx0 : cx1 - rx0]
    region = canvas[cy0:cy1, cx0:cx1]
    blended = region * (1 - alpha[src]) + premultiplied[src]
    region[:] = np.clip(blended, 0, 255, out=blended)


def _line_kernel(length: int, direction: np.ndarray) -> np.ndarray:
    """Normalised motion-blur kernel: a line of ``length`` px along ``direction``."""
    kernel = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    d = direction / max(float(np.hypot(*direction)), 1e-6) * c
    cv2.line(kernel, (round(c - d[0]), round(c - d[1])), (round(c + d[0]), round(c + d[1])), 1.0, 1)
    return kernel / kernel.sum()


def write_sequence(video: SyntheticVideo, out_dir: Path, quality: int = 90) -> Path:
    """Write ``video`` in the uniform layout: ``<out>/<name>/img/00001.jpg`` and ``groundtruth.txt``."""
    seq_dir = Path(out_dir) / video.name
    img_dir = seq_dir / "img"
    img_dir.mkdir(parents=True, exist_ok=True)
    for k in range(len(video)):
        bgr = cv2.cvtColor(video.frame(k), cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(img_dir / f"{k + 1:05d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, quality]):
            raise OSError(f"cannot write frame {k + 1} of {video.name} under {img_dir}")
    lines = [
        "nan,nan,nan,nan" if np.isnan(box).any() else ",".join(f"{v:.2f}" for v in box) for box in video.gt
    ]
    (seq_dir / "groundtruth.txt").write_text("\n".join(lines) + "\n")
    return seq_dir
