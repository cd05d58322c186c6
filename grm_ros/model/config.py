"""Network variants as data: one small yaml file per variant in ``variants/``.

Every number that distinguishes GRM-B256 from GRM-L320 (or from a CPU-sized model) lives in the yaml, so
the network code has no per-variant branches and a trained checkpoint is described by its variant name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType

import yaml

# Kept here rather than imported from division.py, so the config module stays free of torch.
DIVISION_MODES = ("auto", "two_stream", "one_stream")
# Appendix C.3: the division MLP's class-1 probability scales template<->search attention instead of a hard
# decision masking it, per search token or pooled over scaling_window x scaling_window regions.
ATTENTION_SCALINGS = ("none", "token", "region")
# Token embeddings (see ``stems``): the ViT's linear patch projection, or NanoTrack v2's pretrained
# backbone (stride 16) followed by a 1x1 projection.
STEMS = ("patch", "nanotrack")
STEM_STRIDES = {"nanotrack": 16}
VARIANTS_DIR = Path(__file__).resolve().parent / "variants"
# The input normalisation of every variant's crops (ImageNet's, as the authors train): the tracker applies
# it, and a 0..255 stem undoes it.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The tracker settings a variant's yaml may calibrate (tracker_defaults); the values used where it does
# not are the tracker's (grm_ros.tracking.tracker.TRACKER_FALLBACK).
TRACKER_CALIBRATION = ("lost_threshold", "recover_threshold", "lost_search_scale")


@dataclass(frozen=True)
class GRMConfig:
    """Architecture and crop geometry of one GRM variant.

    ``thresholds`` maps an upper-case benchmark name to the division threshold tau used at test time
    (0 = argmax rule); the key ``DEFAULT`` is always present.

    ``tracker_defaults`` calibrates the tracker to this network's confidence scale (the score-map peak of
    a small CPU model sits higher than a large model's): any of ``lost_threshold``, ``recover_threshold``
    and ``lost_search_scale``, used wherever a ``TrackerConfig`` leaves them unset.

    ``division_modes`` fixes the token division of blocks 1..depth-1 (one entry each): "auto" predicts it,
    "two_stream" / "one_stream" skip the division MLP (appendix C.2; written by ``grm-calibrate``).
    Empty means all "auto". Checkpoints of the all-auto variant load into a derived one (see ``skipping``).

    ``weights`` names the file in ``model/weights/`` that holds this variant's packaged model (None: the
    package ships none, and a checkpoint must be given). It travels with derived variants, whose loader
    drops the division MLPs they fix.

    ``stem`` picks the token embedding: "patch" (the paper's) or a pretrained convolutional stem whose
    stride must equal ``patch_size``, so the token grids and everything after them stay the same.

    ``attention_scaling`` (appendix C.3) replaces the discrete division of the "auto" blocks: "none" (the
    paper's Gumbel / threshold decision), "token" (each search token's interaction probability scales its
    template<->search attention weights) or "region" (that probability averaged over non-overlapping
    ``scaling_window`` x ``scaling_window`` windows of the search grid). Same parameters, so such a variant
    trains from the same initialisation; it has no threshold to tune, so ``thresholds`` must all be 0.
    """

    name: str
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    patch_size: int = 16
    template_size: int = 128
    search_size: int = 256
    template_factor: float = 2.0
    search_factor: float = 4.0
    head_channels: int = 256
    division_hidden: tuple[int, int] = (384, 192)
    drop_path: float = 0.1
    pretrain_grid: int = 14
    thresholds: Mapping[str, float] = field(default_factory=lambda: {"DEFAULT": 0.0}, hash=False)
    division_modes: tuple[str, ...] = ()
    tracker_defaults: Mapping[str, float] = field(default_factory=dict, hash=False)
    stem: str = "patch"
    weights: str | None = None
    attention_scaling: str = "none"
    scaling_window: int = 2

    def __post_init__(self) -> None:
        where = f"GRM variant {self.name!r}"
        positive = ("embed_dim", "depth", "num_heads", "patch_size", "template_size", "search_size",
                    "head_channels", "pretrain_grid")
        for key in positive:
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{where}: {key} must be a positive integer, got {value!r}")
        if self.depth < 2:
            raise ValueError(f"{where}: depth must be >= 2 (token division starts at the second block)")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"{where}: embed_dim {self.embed_dim} is not divisible by "
                             f"num_heads {self.num_heads}")
        for key in ("template_size", "search_size"):
            if getattr(self, key) % self.patch_size:
                raise ValueError(f"{where}: {key} {getattr(self, key)} is not a multiple of "
                                 f"patch_size {self.patch_size}")
        if self.head_channels % 8:
            raise ValueError(f"{where}: head_channels {self.head_channels} must be divisible by 8 "
                             "(the head halves it three times)")
        for key in ("mlp_ratio", "template_factor", "search_factor"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{where}: {key} must be > 0, got {getattr(self, key)!r}")
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"{where}: drop_path must be in [0, 1), got {self.drop_path!r}")
        if self.weights is not None and (not isinstance(self.weights, str) or Path(self.weights).name
                                         != self.weights or not self.weights.endswith(".pth")):
            raise ValueError(f"{where}: weights must be a file name ending in .pth, got {self.weights!r}")
        if self.stem not in STEMS:
            raise ValueError(f"{where}: stem must be one of {STEMS}, got {self.stem!r}")
        if self.stem in STEM_STRIDES and self.patch_size != STEM_STRIDES[self.stem]:
            raise ValueError(f"{where}: the {self.stem} stem has stride {STEM_STRIDES[self.stem]}, so "
                             f"patch_size must be {STEM_STRIDES[self.stem]}, got {self.patch_size}")
        hidden = tuple(self.division_hidden)
        if len(hidden) != 2 or any(not isinstance(h, int) or h <= 0 for h in hidden):
            raise ValueError(f"{where}: division_hidden must be two positive integers, "
                             f"got {self.division_hidden!r}")
        object.__setattr__(self, "division_hidden", hidden)
        thresholds = {str(k).upper(): float(v) for k, v in dict(self.thresholds).items()}
        if "DEFAULT" not in thresholds:
            raise ValueError(f"{where}: thresholds must contain a DEFAULT entry")
        for key, tau in thresholds.items():
            if not 0.0 <= tau <= 1.0:
                raise ValueError(f"{where}: threshold {key}={tau} is outside [0, 1]")
        object.__setattr__(self, "thresholds", MappingProxyType(thresholds))
        modes = tuple(self.division_modes or ())
        if modes and len(modes) != self.depth - 1:
            raise ValueError(f"{where}: division_modes needs one entry per dividing block (depth - 1 = "
                             f"{self.depth - 1}), got {len(modes)}")
        bad = [m for m in modes if m not in DIVISION_MODES]
        if bad:
            raise ValueError(f"{where}: division_modes entries must be one of {DIVISION_MODES}, got {bad}")
        object.__setattr__(self, "division_modes", modes)
        if self.attention_scaling not in ATTENTION_SCALINGS:
            raise ValueError(f"{where}: attention_scaling must be one of {ATTENTION_SCALINGS}, "
                             f"got {self.attention_scaling!r}")
        window = self.scaling_window
        if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
            raise ValueError(f"{where}: scaling_window must be a positive integer, got {window!r}")
        if self.attention_scaling == "region" and self.search_feat % window:
            raise ValueError(f"{where}: scaling_window {window} must divide the {self.search_feat}x"
                             f"{self.search_feat} search token grid for attention_scaling 'region'")
        if self.attention_scaling != "none" and any(thresholds.values()):
            raise ValueError(f"{where}: thresholds tune the discrete division; with attention_scaling "
                             f"{self.attention_scaling!r} they must all be 0, got {thresholds}")
        unknown = sorted(set(self.tracker_defaults) - set(TRACKER_CALIBRATION))
        if unknown:
            raise ValueError(f"{where}: tracker_defaults may set {list(TRACKER_CALIBRATION)}, not {unknown}")
        calibrated = {k: float(v) for k, v in dict(self.tracker_defaults).items()}
        object.__setattr__(self, "tracker_defaults", MappingProxyType(calibrated))

    def division_mode(self, block: int) -> str:
        """Mode of block ``block`` (0-based); block 0 never divides and reports "auto"."""
        if block == 0 or not self.division_modes:
            return "auto"
        return self.division_modes[block - 1]

    @property
    def template_feat(self) -> int:
        """Side of the template token grid."""
        return self.template_size // self.patch_size

    @property
    def search_feat(self) -> int:
        """Side F of the search token grid, which is also the side of the head's output maps."""
        return self.search_size // self.patch_size

    @property
    def num_template_tokens(self) -> int:
        return self.template_feat**2

    @property
    def num_search_tokens(self) -> int:
        return self.search_feat**2

    def threshold_for(self, benchmark: str | None) -> float:
        """Division threshold tau for a benchmark, as the authors' tracker looks it up (upper-cased name)."""
        if benchmark is None:
            return self.thresholds["DEFAULT"]
        return self.thresholds.get(benchmark.upper(), self.thresholds["DEFAULT"])

    def to_dict(self) -> dict:
        """Plain containers only, so the config can travel inside a weights-only checkpoint."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["division_hidden"] = list(self.division_hidden)
        out["thresholds"] = dict(self.thresholds)
        out["division_modes"] = list(self.division_modes)
        out["tracker_defaults"] = dict(self.tracker_defaults)
        return out


def list_variants() -> list[str]:
    """Names of the variants shipped with the package."""
    return sorted(p.stem for p in VARIANTS_DIR.glob("*.yaml"))


def config_from_dict(data: Mapping, source: str) -> GRMConfig:
    """Build a config from a mapping, naming ``source`` in every error."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: expected a mapping of GRMConfig fields, got {type(data).__name__}")
    known = {f.name for f in fields(GRMConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{source}: unknown GRMConfig field(s) {unknown}; known fields: {sorted(known)}")
    missing = sorted({"name", "embed_dim", "depth", "num_heads"} - set(data))
    if missing:
        raise ValueError(f"{source}: missing required field(s) {missing}")
    try:
        return GRMConfig(**data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: {err}") from None


def load_variant(name_or_path: str | Path) -> GRMConfig:
    """A builtin variant by name (``vitb_256``...) or a variant yaml file by path."""
    builtin = VARIANTS_DIR / f"{name_or_path}.yaml"
    path = builtin if isinstance(name_or_path, str) and builtin.is_file() else Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"unknown GRM variant {str(name_or_path)!r}: not one of {list_variants()} "
                         "and not a path to a yaml file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid yaml: {err}") from None
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    return config_from_dict(data, str(path))
