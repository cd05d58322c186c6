"""Template/search pair sampling, the authors' way (FACTS §11), on top of the shared geometry.

A sample is drawn from one of several weighted sources (datasets): pick a video, a visible template
frame and a later visible search frame at most ``max_interval`` frames after it (the window grows by 5
frames whenever it holds no visible frame), jitter the search box in centre and scale, crop both with
``grm_ros.tracking.geometry.sample_target`` and express the search target with ``box_to_crop_coords``, the
inverse of what the tracker decodes. Image datasets (COCO) use the same image for both.

Every sample is a pure function of (seed, index), so training is reproducible, resumable at any step and
shardable across DDP ranks without coordination.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterator
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import torch

from grm_ros.datasets import Sequence, load_frame
from grm_ros.datasets.materials import Material, discover_material
from grm_ros.datasets.synthetic import SyntheticVideo, SynthParams
from grm_ros.tracking.geometry import box_to_crop_coords, normalize_image, sample_target
from grm_ros.training import augment

GAP_INCREASE = 5
MAX_ATTEMPTS = 100


class Video(Protocol):
    """What the sampler needs from a sequence: boxes, visibility and random access to frames."""

    gt: np.ndarray

    @property
    def visible(self) -> np.ndarray: ...

    def __len__(self) -> int: ...

    def frame(self, k: int) -> np.ndarray: ...


class DiskVideo:
    """A ``datasets.Sequence`` whose frames are read from disk on demand."""

    def __init__(self, sequence: Sequence) -> None:
        self.sequence = sequence
        self.gt = sequence.gt

    @property
    def visible(self) -> np.ndarray:
        return self.sequence.visible

    def __len__(self) -> int:
        return len(self.sequence)

    def frame(self, k: int) -> np.ndarray:
        return load_frame(self.sequence.frames[k])


class TrainingSource(ABC):
    """One dataset in the mix: ``weight`` sets how often it is drawn, ``is_video`` whether frames differ."""

    def __init__(self, name: str, weight: float = 1.0, is_video: bool = True) -> None:
        if not (math.isfinite(weight) and weight > 0):
            raise ValueError(f"source {name!r}: weight must be a positive number, got {weight}")
        self.name, self.weight, self.is_video = name, weight, is_video

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def video(self, i: int) -> Video: ...


class SequenceSource(TrainingSource):
    """Sequences from a reader (``list_sequences``, ``read_coco``...)."""

    def __init__(
        self, name: str, sequences: SequenceABC[Sequence], weight: float = 1.0, is_video: bool = True
    ):
        super().__init__(name, weight, is_video)
        if len(sequences) == 0:
            raise ValueError(f"source {name!r} has no sequences")
        self.sequences = sequences

    def __len__(self) -> int:
        return len(self.sequences)

    def video(self, i: int) -> Video:
        return DiskVideo(self.sequences[i])


class SyntheticSource(TrainingSource):
    """``count`` generated videos; the few most recent are kept, since building one costs ~15 ms."""

    def __init__(
        self,
        count: int = 100_000,
        seed: int = 0,
        split: str = "train",
        params: SynthParams | None = None,
        weight: float = 1.0,
        material: Material | None = None,
        name: str = "synthetic",
    ) -> None:
        super().__init__(name, weight, True)
        if count < 1:
            raise ValueError(f"synthetic source needs count >= 1, got {count}")
        self.count, self.seed, self.split = count, seed, split
        self.params = params or SynthParams()
        self.material = material or discover_material(split)
        self._cache: OrderedDict[int, SyntheticVideo] = OrderedDict()

    def __len__(self) -> int:
        return self.count

    def video(self, i: int) -> Video:
        if i not in self._cache:
            self._cache[i] = SyntheticVideo(i, self.seed, self.split, self.params, self.material)
            if len(self._cache) > 16:
                self._cache.popitem(last=False)
        return self._cache[i]


@dataclass(frozen=True)
class SamplerConfig:
    """Crop geometry (from the model config) and the authors' sampling/augmentation settings (vitb)."""

    template_factor: float = 2.0
    template_size: int = 128
    search_factor: float = 4.0
    search_size: int = 256
    max_interval: int = 200
    center_jitter: float = 3.0
    scale_jitter: float = 0.25
    p_grayscale: float = 0.05
    p_flip: float = 0.5
    brightness_jitter: float = 0.2
    # Beyond the authors' recipe (all off by default; see ``augment``): search-crop blur, colour,
    # occluders, a pasted look-alike of the template, and negative pairs whose search crop shows
    # another video's object (``present`` = 0), which teach the confidence to fall when the target is gone.
    p_blur: float = 0.0
    p_color: float = 0.0
    p_occlude: float = 0.0
    p_distractor: float = 0.0
    p_negative: float = 0.0

    @classmethod
    def for_model(cls, model_cfg: object, **overrides: float) -> SamplerConfig:
        """Sizes and factors taken from a ``GRMConfig`` so crops always match the network input."""
        fields = {
            name: getattr(model_cfg, name)
            for name in ("template_factor", "template_size", "search_factor", "search_size")
        }
        return cls(**{**fields, **overrides})


def sample_frame_pair(
    visible: np.ndarray, max_interval: int, rng: np.random.Generator
) -> tuple[int, int] | None:
    """Causal pair: a visible template frame, then a visible search frame 1..max_interval frames later.

    The window widens by 5 frames while it holds no visible frame; None when no such pair exists.
    """
    ids = np.flatnonzero(visible)
    if len(ids) < 2:
        return None
    template = int(rng.choice(ids[:-1]))
    gap = max_interval
    while True:
        later = ids[(ids > template) & (ids <= template + gap)]
        if len(later):
            return template, int(rng.choice(later))
        gap += GAP_INCREASE


def jitter_box(
    box: np.ndarray, center_jitter: float, scale_jitter: float, rng: np.random.Generator
) -> np.ndarray:
    """Box whose size is scaled by exp(N(0, scale_jitter)) per side and centre moved uniformly by up to
    ±center_jitter/2 · sqrt(w'h') — the crop the sampler pretends the tracker would have made."""
    size = box[2:] * np.exp(rng.normal(size=2) * scale_jitter)
    max_offset = math.sqrt(size[0] * size[1]) * center_jitter
    center = box[:2] + box[2:] / 2 + max_offset * (rng.random(2) - 0.5)
    return np.concatenate((center - size / 2, size))


class PairDataset(torch.utils.data.Dataset):
    """Map-style dataset of training pairs; item ``i`` is determined by (seed, i) alone.

    Items: ``template`` (3, Ht, Wt) and ``search`` (3, Hs, Ws) normalised float32, ``search_box`` and
    ``template_box`` (4,) normalised x, y, w, h in their crops, ``source`` (index into ``sources``) and
    ``present`` (1.0, or 0.0 for a negative pair whose search crop shows another object).
    """

    def __init__(self, sources: list[TrainingSource], config: SamplerConfig, seed: int = 0) -> None:
        if not sources:
            raise ValueError("PairDataset needs at least one source")
        self.sources, self.config, self.seed = sources, config, seed
        weights = np.array([s.weight for s in sources], dtype=np.float64)
        self._probs = weights / weights.sum()

    def __len__(self) -> int:
        return 2**62  # effectively endless; the trainer asks for indices by step

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        for _ in range(MAX_ATTEMPTS):
            sample = self._try_sample(rng)
            if sample is not None:
                return sample
        names = ", ".join(s.name for s in self.sources)
        raise RuntimeError(f"no valid training pair after {MAX_ATTEMPTS} attempts from sources: {names}")

    def _random_video(self, rng: np.random.Generator) -> tuple[int, Video]:
        source_i = int(rng.choice(len(self.sources), p=self._probs))
        source = self.sources[source_i]
        return source_i, source.video(int(rng.integers(len(source))))

    def _try_sample(self, rng: np.random.Generator) -> dict[str, torch.Tensor] | None:
        c = self.config
        source_i, video = self._random_video(rng)
        source = self.sources[source_i]
        if source.is_video:
            pair = sample_frame_pair(video.visible, c.max_interval, rng)
            if pair is None:
                return None
            t_id, s_id = pair
        else:
            if not video.visible[0]:
                return None
            t_id = s_id = 0
        t_img = video.frame(t_id)
        s_img = t_img if s_id == t_id else video.frame(s_id)
        t_box, s_box = video.gt[t_id].copy(), video.gt[s_id].copy()
        present = not _chance(rng, c.p_negative)
        if not present:  # the search crop comes from another video, around that video's object
            _, other = self._random_video(rng)
            shown = np.flatnonzero(other.visible)
            if len(shown) == 0:
                return None
            k = int(rng.choice(shown))
            s_img, s_box = other.frame(k), other.gt[k].copy()

        grayscale, flip = rng.random() < c.p_grayscale, rng.random() < c.p_flip
        s_center = jitter_box(s_box, c.center_jitter, c.scale_jitter, rng)
        if not np.all(np.isfinite(s_center)) or s_center[2] <= 0 or s_center[3] <= 0:
            return None
        template, _ = sample_target(t_img, t_box, c.template_factor, c.template_size)
        search, _ = sample_target(s_img, s_center, c.search_factor, c.search_size)
        t_crop_box = box_to_crop_coords(t_box, t_box, c.template_factor, c.template_size)
        s_crop_box = box_to_crop_coords(s_box, s_center, c.search_factor, c.search_size)
        if np.any(s_crop_box[2:] * c.search_size < 1) or np.any(t_crop_box[2:] * c.template_size < 1):
            return None  # under a crop pixel: nothing to learn from (authors drop these too)
        search = self._augment(search, s_crop_box * c.search_size, template,
                               t_crop_box * c.template_size, rng)
        if grayscale:
            template, search = _grayscale(template), _grayscale(search)
        if flip:  # flipping the crops costs less than flipping frames and shows the same mirrored scene
            template, t_crop_box = _hflip(template, t_crop_box)
            search, s_crop_box = _hflip(search, s_crop_box)
        return {
            "template": _to_tensor(_brightness(template, c.brightness_jitter, rng)),
            "search": _to_tensor(_brightness(search, c.brightness_jitter, rng)),
            "template_box": torch.as_tensor(t_crop_box, dtype=torch.float32),
            "search_box": torch.as_tensor(s_crop_box, dtype=torch.float32),
            "source": torch.tensor(source_i),
            "present": torch.tensor(1.0 if present else 0.0),
        }

    def _augment(self, search: np.ndarray, box: np.ndarray, template: np.ndarray, template_box: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
        """The search-crop augmentations of ``augment``, each with its configured probability."""
        c = self.config
        if _chance(rng, c.p_distractor):
            search = augment.paste_distractor(search, box, template, template_box, rng)
        if _chance(rng, c.p_occlude):
            search = augment.occlude(search, box, rng)
        if _chance(rng, c.p_blur):
            search = augment.blur(search, rng)
        if _chance(rng, c.p_color):
            search = augment.color(search, rng)
        return search


def _chance(rng: np.random.Generator, p: float) -> bool:
    """True with probability ``p``; draws nothing when ``p`` is 0, so the authors' recipe samples the same
    pairs as before these augmentations existed."""
    return p > 0 and rng.random() < p


def _grayscale(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


def _hflip(crop: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror a crop and its normalised box."""
    flipped = box.copy()
    flipped[0] = 1.0 - box[0] - box[2]
    return np.ascontiguousarray(crop[:, ::-1]), flipped


def _brightness(image: np.ndarray, jitter: float, rng: np.random.Generator) -> np.ndarray:
    factor = rng.uniform(max(0.0, 1 - jitter), 1 + jitter)
    return np.clip(image.astype(np.float32) * factor, 0, 255)


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(normalize_image(image).transpose(2, 0, 1)))


class StepIndices(torch.utils.data.Sampler[int]):
    """Endless sample indices for one DDP rank, starting at ``start_step``.

    Step s of rank r uses indices ((s·world + r)·batch ... +batch-1): ranks never share a sample, and a
    resumed run continues with exactly the samples an uninterrupted run would have seen.
    """

    def __init__(self, batch_size: int, start_step: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.batch_size, self.start_step, self.rank, self.world_size = (
            batch_size,
            start_step,
            rank,
            world_size,
        )

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        while True:
            first = (step * self.world_size + self.rank) * self.batch_size
            yield from range(first, first + self.batch_size)
            step += 1
