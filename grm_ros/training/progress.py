"""Training progress: tqdm's bar when it is installed, otherwise one plain line per log interval.

Loss components are averaged over the interval, because single-batch values of the focal loss swing
too much to read.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from typing import TextIO


def _format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    """Call ``update`` once per step with that step's loss components; ``close`` at the end."""

    def __init__(
        self,
        total: int,
        start: int = 0,
        every: int = 20,
        enabled: bool = True,
        stream: TextIO | None = None,
        use_tqdm: bool = True,
    ) -> None:
        self.total, self.every, self.enabled = total, max(1, every), enabled
        self.stream = stream or sys.stderr
        self._sums: dict[str, float] = defaultdict(float)
        self._count = 0
        self._start_step, self._start_time = start, time.monotonic()
        self._bar = None
        if enabled and use_tqdm:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, initial=start, file=self.stream, dynamic_ncols=True)

    def averages(self) -> dict[str, float]:
        return {k: v / self._count for k, v in self._sums.items()} if self._count else {}

    def update(self, step: int, stats: dict[str, float], lr: float) -> None:
        for key, value in stats.items():
            self._sums[key] += value
        self._count += 1
        if self._bar is not None:
            self._bar.update(1)
        if not self.enabled or (step % self.every and step != self.total):
            return
        averaged = self.averages()
        if self._bar is not None:
            self._bar.set_postfix({k: f"{v:.3f}" for k, v in averaged.items()} | {"lr": f"{lr:.1e}"})
        else:
            elapsed = time.monotonic() - self._start_time
            rate = (step - self._start_step) / max(elapsed, 1e-9)
            eta = (self.total - step) / rate if rate > 0 else 0.0
            parts = " ".join(f"{k} {v:.4f}" for k, v in averaged.items())
            print(
                f"step {step}/{self.total} {parts} | lr {lr:.1e} | {rate:.2f} it/s "
                f"elapsed {_format_duration(elapsed)} eta {_format_duration(eta)}",
                file=self.stream,
                flush=True,
            )
        self._sums.clear()
        self._count = 0

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
