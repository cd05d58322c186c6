"""Timing helpers: interleaved runs so every compared variant sees the same machine load."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np
import torch


def synchronizer(device: torch.device | str) -> Callable[[], None]:
    """What to call before reading the clock: CUDA work is asynchronous, CPU work is not."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return lambda: torch.cuda.synchronize(dev)
    return lambda: None


def summarize(seconds: list[float] | np.ndarray) -> dict[str, float]:
    """Median, p90, p99 and mean in milliseconds, plus the sample count."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.size == 0:
        raise ValueError("no timings to summarize")
    return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()), "n": int(ms.size)}


def interleaved(fns: Mapping[str, Callable[[], object]], runs: int, warmup: int = 2,
                sync: Callable[[], None] = lambda: None) -> dict[str, list[float]]:
    """Seconds per call of each function, calling them in turn ``runs`` times after ``warmup`` rounds.

    Interleaving matters on a shared machine: load that comes and goes hits every variant alike, so the
    ratios stay meaningful even when the absolute figures drift.
    """
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(warmup + runs):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def with_ratios(times: Mapping[str, list[float]], baseline: str) -> dict[str, dict[str, float]]:
    """``summarize`` per entry plus ``speedup_vs_<baseline>`` = baseline median / entry median."""
    if baseline not in times:
        raise ValueError(f"baseline {baseline!r} is not one of {sorted(times)}")
    out = {name: summarize(t) for name, t in times.items()}
    base = out[baseline]["median_ms"]
    for stats in out.values():
        stats[f"speedup_vs_{baseline}"] = base / stats["median_ms"]
    return out
