"""Success and precision plots of several trackers on one figure, as the papers draw them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on robots or CI
import matplotlib.pyplot as plt
import numpy as np

from grm_ros.evaluation.metrics import (
    IOU_THRESHOLDS,
    NORM_THRESHOLDS,
    PIXEL_THRESHOLDS,
    PRECISION_PX,
    Score,
)

_STYLES = ("-", "--", "-.", ":")


def _plot(
    path: Path, curves: Mapping[str, tuple[np.ndarray, float]], x: np.ndarray, xlabel: str, ylabel: str,
    title: str, marker_x: float | None = None,
) -> Path:
    fig, ax = plt.subplots(figsize=(5.0, 4.0), dpi=120)
    ranked = sorted(curves, key=lambda n: -np.nan_to_num(curves[n][1], nan=-1.0))
    for i, name in enumerate(ranked):
        y, value = curves[name]
        ax.plot(x, y, _STYLES[(i // 10) % len(_STYLES)], linewidth=1.8, label=f"{name} [{value:.3f}]")
    if marker_x is not None:
        ax.axvline(marker_x, color="0.6", linewidth=0.8)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=(x[0], x[-1]), ylim=(0, 1.0))
    ax.grid(True, alpha=0.4)
    ax.legend(loc="lower left" if ylabel.startswith("Success") else "lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_curves(totals: Mapping[str, Score], out_dir: str | Path, dataset: str = "") -> list[Path]:
    """success.png (AUC in the legend), precision.png (P@20) and norm_precision.png (NP@0.2)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = f" on {dataset}" if dataset else ""
    return [
        _plot(out_dir / "success.png", {n: (s.success, s.auc) for n, s in totals.items()}, IOU_THRESHOLDS,
              "Overlap threshold", "Success rate", f"Success plots of OPE{suffix}"),
        _plot(out_dir / "precision.png", {n: (s.precision, s.p20) for n, s in totals.items()},
              PIXEL_THRESHOLDS, "Location error threshold (px)", "Precision",
              f"Precision plots of OPE{suffix}", marker_x=PRECISION_PX),
        _plot(out_dir / "norm_precision.png", {n: (s.norm_precision, s.np20) for n, s in totals.items()},
              NORM_THRESHOLDS, "Normalised location error threshold", "Normalised precision",
              f"Normalised precision plots of OPE{suffix}", marker_x=0.2),
    ]
