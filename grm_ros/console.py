"""What the command-line tools share: output checks made before any work, and the progress line.

A tool that tracks for minutes and then cannot write its result has wasted the minutes, so grm-track and
grm-eval check where they will write first; the messages become their one ``error:`` line (exit 2).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TextIO


def check_output_file(path: Path) -> None:
    """Raise ValueError unless a result file can be written at ``path`` (parent folders may be created)."""
    if path.is_dir():
        raise ValueError(f"--out {path} is a folder; name the result file, e.g. {path / 'result.txt'}")
    _check_writable_parent(path)


def check_output_dir(path: Path) -> None:
    """Raise ValueError unless ``path`` is, or can be created as, a writable folder."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} is a file; name a folder for the outputs")
    _check_writable_parent(path / "x")


def _check_writable_parent(path: Path) -> None:
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"cannot write {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {path}: no write permission in {parent}")


class ProgressBar:
    """One redrawn stderr line: frames done of the total, and the frame rate so far (redrawn 4x a second)."""

    WIDTH = 30

    def __init__(self, total: int, enabled: bool = True, stream: TextIO | None = None,
                 prog: str = "grm-track") -> None:
        self.total, self.enabled, self.stream, self.prog = total, enabled, stream or sys.stderr, prog
        self.done = 0
        self._start = self._drawn = time.monotonic()

    @property
    def fps(self) -> float:
        return self.done / max(time.monotonic() - self._start, 1e-9)

    def update(self) -> None:
        self.done += 1
        now = time.monotonic()
        if self.enabled and (now - self._drawn >= 0.25 or self.done == self.total):
            self._drawn = now
            filled = self.WIDTH * self.done // max(self.total, 1)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            print(f"\r{self.prog}: [{bar}] {self.done}/{self.total} frames, {self.fps:.1f} fps", end="",
                  file=self.stream, flush=True)

    def close(self) -> None:
        if self.enabled and self.done:
            print(file=self.stream, flush=True)
