"""Tracker time per frame (crops + forward + decode + states) on synthetic frames of a given size."""

from __future__ import annotations

import numpy as np
import torch

from grm_ros.bench.model_bench import random_model
from grm_ros.bench.stats import interleaved, summarize, synchronizer
from grm_ros.model import DEFAULT_VARIANT, load_variant
from grm_ros.model.engine import EngineConfig
from grm_ros.tracking.tracker import Tracker, TrackerConfig, tracker_for

RESOLUTIONS = {"640x480": (640, 480), "1920x1080": (1920, 1080)}


def moving_frames(width: int, height: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """Textured frames in which the content shifts a little each frame, so crops really change."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (height, width + count * 2, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[:, 2 * k:2 * k + width]) for k in range(count)]


def start_boxes(width: int, height: int, targets: int) -> list[tuple[float, float, float, float]]:
    """``targets`` boxes spread along the frame's diagonal, each about a tenth of the frame high."""
    size = max(16.0, height / 10)
    return [((k + 1) * width / (targets + 1) - size / 2, (k + 1) * height / (targets + 1) - size / 2, size,
             size) for k in range(targets)]


def nanotrack_step(video: list[np.ndarray], box: tuple[float, float, float, float]):
    """NanoTrack v2 (cv2.TrackerNano, the comparator of ``make eval``) on the same frames, or None when
    its model files are not there."""
    from grm_ros.evaluation.comparators import nanotrack

    try:
        tracker = nanotrack()
    except FileNotFoundError:
        return None
    tracker.initialize(video[0], box)
    cursor = iter(range(1, len(video)))
    return lambda: tracker.track(video[next(cursor)])


def time_trackers(trackers: dict[str, Tracker], resolution: str = "640x480", targets: int = 1,
                  frames: int = 20, warmup: int = 2, device: str = "cpu") -> dict[str, dict]:
    """Per-frame ``Tracker.update`` time of each tracker, interleaved frame by frame over the same moving
    frames, each started on ``targets`` boxes; with one target NanoTrack v2 runs in the same interleaving
    as the baseline (``nanotrack``, when its files exist). Median, percentiles and fps per entry, and the
    backend each tracker's engine runs."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"unknown resolution {resolution!r}; choose one of {sorted(RESOLUTIONS)}")
    width, height = RESOLUTIONS[resolution]
    video = moving_frames(width, height, frames + warmup + 1)
    cursor = dict.fromkeys(trackers, 1)
    for tracker in trackers.values():
        tracker.engine.warmup((targets,))
        for box in start_boxes(width, height, targets):
            tracker.start(video[0], box)

    def step(name: str) -> None:
        trackers[name].update(video[cursor[name]])
        cursor[name] += 1

    steps = {name: (lambda name=name: step(name)) for name in trackers}
    baseline = nanotrack_step(video, start_boxes(width, height, 1)[0]) if targets == 1 else None
    if baseline is not None:
        steps["nanotrack"] = baseline
    with torch.inference_mode():
        times = interleaved(steps, frames, warmup, synchronizer(device))
    out = {}
    for name, t in times.items():
        stats = summarize(t)
        stats["fps"] = 1e3 / stats["median_ms"]
        if name in trackers:
            stats["backend"] = trackers[name].engine.backend
        out[name] = stats
    return out


def bench_tracker(variant: str = DEFAULT_VARIANT, device: str = "cpu", dtype: str = "fp32",
                  resolution: str = "640x480", targets: int = 1, geometries: tuple[str, ...] = ("reference",
                                                                                                "device"),
                  frames: int = 20, warmup: int = 2, backend: str = "auto",
                  threads: int | None = None) -> dict:
    """Per-frame ``Tracker.update`` time for each geometry on an engine with ``backend`` (the one
    ``auto`` picked is reported per geometry), interleaved with NanoTrack v2 (``time_trackers``)."""
    cfg = load_variant(variant)
    trackers = {geometry: tracker_for(random_model(cfg), TrackerConfig(geometry=geometry),
                                      EngineConfig(backend, device, dtype, threads))
                for geometry in geometries}
    out = time_trackers(trackers, resolution, targets, frames, warmup, device)
    return {"variant": cfg.name, "device": device, "dtype": dtype, "resolution": resolution,
            "targets": targets, "threads": torch.get_num_threads(), "geometries": out}
