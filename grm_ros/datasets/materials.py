"""Where synthetic sequences get their pictures from.

The real path uses photos that Debian packages install (nothing is fetched at run time):
backgrounds from ``lomiri-wallpapers-16.04`` (and any other wallpaper package under /usr/share/backgrounds),
object cut-outs with alpha from ``tuxpaint-stamps-default``. When a package is missing, procedural
textures and blobs stand in, so the generator always works; they are plainly worse training material.

Assets are split between "train" and "heldout" by a hash of their name, so held-out sequences show
objects and backgrounds that training never saw.
"""

from __future__ import annotations

import functools
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

BACKGROUND_DIRS = (Path("/usr/share/backgrounds"),)
CUTOUT_DIRS = (Path("/usr/share/tuxpaint/stamps"),)
BACKGROUND_ENV = "GRM_SYNTH_BACKGROUNDS"
CUTOUT_ENV = "GRM_SYNTH_CUTOUTS"
# tuxpaint's "symbols" are flat letters, digits and signs, a third of the stamps and unlike anything a
# robot tracks; the other folders hold photos of animals, food, vehicles, people, plants...
EXCLUDED_CUTOUT_FOLDERS = frozenset({"symbols"})

SPLITS = ("train", "heldout")
HELDOUT_PERCENT = 20
PROCEDURAL_COUNTS = {"background": 50, "cutout": 200}  # backgrounds: few enough to stay cached
PROCEDURAL_PREFIX = "procedural:"

MAX_BACKGROUND_SIDE = 1280
MAX_CUTOUT_SIDE = 192
MIN_CUTOUT_SIDE = 24
BACKGROUND_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Material:
    """Asset names: file paths, or ``procedural:<n>`` for generated stand-ins."""

    backgrounds: tuple[str, ...]
    cutouts: tuple[str, ...]

    @property
    def procedural(self) -> bool:
        return any(a.startswith(PROCEDURAL_PREFIX) for a in self.backgrounds + self.cutouts)


def _dirs_from_env(env: str, default: tuple[Path, ...]) -> tuple[Path, ...]:
    value = os.environ.get(env)
    if value is None:
        return default
    return tuple(Path(p) for p in value.split(os.pathsep) if p)


def _list_files(dirs: tuple[Path, ...], suffixes: tuple[str, ...]) -> list[str]:
    found: set[str] = set()
    for root in dirs:
        if root.is_dir():
            found.update(str(p) for p in root.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
    return sorted(found)


def _asset_key(asset: str) -> str:
    """Name used for the split hash: stable across machines (parent folder + file name)."""
    if asset.startswith(PROCEDURAL_PREFIX):
        return asset
    path = Path(asset)
    return f"{path.parent.name}/{path.name}"


def asset_split(asset: str) -> str:
    return "heldout" if zlib.crc32(_asset_key(asset).encode()) % 100 < HELDOUT_PERCENT else "train"


def _procedural(kind: str, split: str) -> tuple[str, ...]:
    return tuple(
        f"{PROCEDURAL_PREFIX}{kind}:{i}"
        for i in range(PROCEDURAL_COUNTS[kind])
        if asset_split(f"{PROCEDURAL_PREFIX}{kind}:{i}") == split
    )


def discover_material(
    split: str,
    background_dirs: tuple[Path, ...] | None = None,
    cutout_dirs: tuple[Path, ...] | None = None,
    procedural: bool = False,
) -> Material:
    """Assets of one split; each kind falls back to procedural stand-ins when no file is found.

    Directories default to the package locations, overridable with the ``GRM_SYNTH_BACKGROUNDS`` and
    ``GRM_SYNTH_CUTOUTS`` environment variables (``os.pathsep``-separated).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown synthetic split {split!r}; expected one of {SPLITS}")
    backgrounds: tuple[str, ...] = ()
    cutouts: tuple[str, ...] = ()
    if not procedural:
        bg_dirs = background_dirs or _dirs_from_env(BACKGROUND_ENV, BACKGROUND_DIRS)
        cut_dirs = cutout_dirs or _dirs_from_env(CUTOUT_ENV, CUTOUT_DIRS)
        backgrounds = tuple(a for a in _list_files(bg_dirs, BACKGROUND_SUFFIXES) if asset_split(a) == split)
        cutouts = tuple(
            a
            for a in _list_files(cut_dirs, (".png",))
            if asset_split(a) == split and not EXCLUDED_CUTOUT_FOLDERS.intersection(Path(a).parts)
        )
    return Material(
        backgrounds=backgrounds or _procedural("background", split),
        cutouts=cutouts or _procedural("cutout", split),
    )


@functools.lru_cache(maxsize=64)
def load_background(asset: str) -> np.ndarray:
    """RGB uint8, longer side at most MAX_BACKGROUND_SIDE (decoding 4K wallpapers per frame is too slow)."""
    if asset.startswith(PROCEDURAL_PREFIX):
        return procedural_background(zlib.crc32(asset.encode()))
    image = cv2.imread(asset, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read background image {asset}")
    return _limit_side(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), MAX_BACKGROUND_SIDE)


@functools.lru_cache(maxsize=1024)
def load_cutout(asset: str) -> np.ndarray:
    """RGBA uint8 cropped to the alpha bounding box, so the sprite's extent is the ground-truth box."""
    if asset.startswith(PROCEDURAL_PREFIX):
        rgba = procedural_cutout(zlib.crc32(asset.encode()))
    else:
        image = cv2.imread(asset, cv2.IMREAD_UNCHANGED)
        if image is None or image.ndim != 3 or image.shape[2] != 4:
            raise ValueError(f"cut-out {asset} is not an RGBA image")
        rgba = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    ys, xs = np.nonzero(rgba[:, :, 3] > 127)
    if len(xs) == 0:
        raise ValueError(f"cut-out {asset} is fully transparent")
    rgba = rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    if min(rgba.shape[:2]) < MIN_CUTOUT_SIDE // 2:
        raise ValueError(f"cut-out {asset} is too thin ({rgba.shape[1]}x{rgba.shape[0]} px)")
    return _limit_side(rgba, MAX_CUTOUT_SIDE)


def _limit_side(image: np.ndarray, max_side: int) -> np.ndarray:
    scale = max_side / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _noise_texture(rng: np.random.Generator, height: int, width: int, octaves: int = 5) -> np.ndarray:
    """Fractal value noise in [0, 1]: coarse random grids upsampled and summed with halving weights."""
    total = np.zeros((height, width), np.float32)
    weight_sum = 0.0
    for octave in range(octaves):
        cells = 2 ** (octave + 2)
        grid = rng.random((cells, max(2, cells * width // height))).astype(np.float32)
        weight = 0.55**octave
        total += weight * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        weight_sum += weight
    total /= weight_sum
    return np.clip((total - total.min()) / max(float(np.ptp(total)), 1e-6), 0, 1)


def _colorize(rng: np.random.Generator, field: np.ndarray) -> np.ndarray:
    """Map a [0,1] field through a random three-colour palette."""
    palette = rng.integers(0, 256, size=(3, 3)).astype(np.float32)
    lo = np.clip(1 - 2 * field, 0, 1)[..., None]
    hi = np.clip(2 * field - 1, 0, 1)[..., None]
    mid = 1 - lo - hi
    return (lo * palette[0] + mid * palette[1] + hi * palette[2]).astype(np.uint8)


def procedural_background(seed: int, width: int = 960, height: int = 540) -> np.ndarray:
    """Textured scene with random shapes, used when no wallpaper package is installed."""
    rng = np.random.default_rng(seed)
    # texture at quarter resolution: its finest octave is still several pixels wide after upsampling
    small = _colorize(rng, _noise_texture(rng, height // 4, width // 4))
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    for _ in range(int(rng.integers(8, 25))):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(10, height // 3))
        if rng.random() < 0.5:
            cv2.rectangle(image, (x, y), (x + size, y + int(size * rng.uniform(0.3, 2))), color, -1)
        else:
            cv2.circle(image, (x, y), size // 2, color, -1)
    return cv2.GaussianBlur(image, (3, 3), 0)


def procedural_cutout(seed: int, size: int = 128) -> np.ndarray:
    """Textured star-convex blob with alpha, a stand-in for a photo cut-out."""
    rng = np.random.default_rng(seed)
    angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    radius = np.ones_like(angles)
    for harmonic in range(2, 6):
        radius += rng.uniform(-0.25, 0.25) / harmonic * np.cos(harmonic * angles + rng.uniform(0, 2 * np.pi))
    aspect = rng.uniform(0.5, 1.0)
    half = size / 2 - 2
    scale = half / radius.max()
    pts = np.stack(
        (half + 2 + scale * radius * np.cos(angles), half + 2 + aspect * scale * radius * np.sin(angles)),
        axis=1,
    )
    alpha = np.zeros((size, size), np.uint8)
    cv2.fillPoly(alpha, [np.round(pts).astype(np.int32)], 255)
    texture = _colorize(rng, _noise_texture(rng, size, size, octaves=3))
    # darker towards the rim, like a lit rounded object
    depth = cv2.distanceTransform(alpha, cv2.DIST_L2, 3)
    shade = np.minimum(depth / (size / 8), 1.0)[..., None]
    rgb = (texture * (0.55 + 0.45 * shade)).astype(np.uint8)
    return np.dstack((rgb, alpha))
