"""The training-data mix from command-line specs: ``NAME[=PATH][@WEIGHT]``.

``synthetic`` (generated videos), ``sot_train`` (the shared training sequences, read in place), and the
authors' datasets by layout: ``got10k=``, ``lasot=``, ``trackingnet=``, ``coco=`` and ``uniform=``. The
authors weight LaSOT, GOT-10k, COCO and TrackingNet 1:1:1:1. The shared evaluation set (``sot``) is refused:
training on it would make every evaluation number meaningless.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from grm_ros.datasets import list_sequences, shared_root
from grm_ros.datasets.coco import read_coco
from grm_ros.datasets.synthetic import SynthParams
from grm_ros.training.sampler import SequenceSource, SyntheticSource, TrainingSource

LAYOUT_SOURCES = ("uniform", "got10k", "lasot", "trackingnet")
SYNTHETIC_COUNT = 100_000
KNOWN = ("synthetic", "sot_train", "coco", *LAYOUT_SOURCES)


@dataclass(frozen=True)
class DataSpec:
    name: str
    path: Path | None
    weight: float


def parse_data_spec(spec: str) -> DataSpec:
    """``lasot=/data/LaSOT@2`` -> DataSpec("lasot", Path("/data/LaSOT"), 2.0)."""
    text, weight = spec.strip(), 1.0
    if "@" in text:
        head, tail = text.rsplit("@", 1)
        try:
            weight = float(tail)
        except ValueError:
            head = text  # an '@' inside a path, not a weight
        else:
            text = head
    name, _, path = text.partition("=")
    name = name.strip().lower()
    if name not in KNOWN:
        raise ValueError(f"data spec {spec!r}: unknown source {name!r}; known: {', '.join(KNOWN)}")
    if not (math.isfinite(weight) and weight > 0):
        raise ValueError(f"data spec {spec!r}: weight must be > 0")
    if name in (*LAYOUT_SOURCES, "coco") and not path:
        raise ValueError(f"data spec {spec!r}: {name} needs a path, e.g. {name}=/data/{name}")
    if name == "synthetic" and path:
        raise ValueError(f"data spec {spec!r}: synthetic takes no path (videos are generated)")
    return DataSpec(name, Path(path).expanduser() if path else None, weight)


def _refuse_evaluation_data(path: Path) -> None:
    evaluation = (shared_root() / "sot").resolve()
    resolved = path.resolve()
    if resolved == evaluation or evaluation in resolved.parents:
        raise ValueError(f"{path} is the shared evaluation set ({evaluation}); it must never be trained on")


def build_source(spec: DataSpec, seed: int = 0, synth_params: SynthParams | None = None) -> TrainingSource:
    if spec.name == "synthetic":
        return SyntheticSource(
            SYNTHETIC_COUNT, seed=seed, split="train", params=synth_params, weight=spec.weight
        )
    path = spec.path or shared_root() / "sot_train"
    _refuse_evaluation_data(path)
    if spec.name == "coco":
        return SequenceSource("coco", read_coco(path), spec.weight, is_video=False)
    layout = "uniform" if spec.name == "sot_train" else spec.name
    return SequenceSource(spec.name, list_sequences(path, layout), spec.weight)


def build_sources(
    specs: list[str], seed: int = 0, synth_params: SynthParams | None = None
) -> list[TrainingSource]:
    if not specs:
        raise ValueError("no training data given (e.g. --data synthetic --data sot_train)")
    return [build_source(parse_data_spec(s), seed, synth_params) for s in specs]
