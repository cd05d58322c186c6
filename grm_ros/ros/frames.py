"""Frame hand-off between a receiver and an inference worker: a latest-frame slot and a stamp-keyed ring.

A camera can deliver frames faster than the network runs. Queuing them would make every output later
than the one before, so the receiver only ever replaces the newest frame (``LatestFrame``) and the
worker takes whatever is newest when it is ready; replaced frames are counted as dropped. Boxes drawn by
an operator or a detector refer to the frame they were drawn on, which is usually a few frames old by
the time the request arrives, so recent frames are also kept by stamp (``FrameRing``). Frames lost before
the receiver ever saw them are counted from the gaps in each publisher's sequence numbers
(``SequenceGaps``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class StampedFrame:
    """An RGB frame with the identity of its source image. ``stamp_ns`` is the image's header stamp."""

    stamp_ns: int
    frame_id: str
    image: np.ndarray  # HxWx3 uint8 RGB
    received: float = field(default=0.0, compare=False)  # receiver's clock, seconds (for latency only)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])


class LatestFrame:
    """A one-slot mailbox: ``put`` replaces, ``take`` waits for a frame nobody has taken yet.

    Thread-safe. ``dropped`` counts frames replaced before the worker took them.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: StampedFrame | None = None
        self._closed = False
        self.dropped = 0
        self.received = 0

    def put(self, frame: StampedFrame) -> bool:
        """Store ``frame`` as the newest; returns True if it replaced one that was never taken."""
        with self._cond:
            replaced = self._frame is not None
            self.dropped += replaced
            self.received += 1
            self._frame = frame
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> StampedFrame | None:
        """The newest untaken frame, waiting up to ``timeout`` s; None on timeout or after ``close``."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._closed, timeout)
            frame, self._frame = self._frame, None
            return frame

    def clear(self) -> None:
        with self._cond:
            self._frame = None

    def close(self) -> None:
        """Wake every waiting ``take`` for good (worker shutdown)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False
            self._frame = None


class FrameRing:
    """The last ``capacity`` frames by stamp, oldest evicted first. Thread-safe.

    Stamps normally increase. A stamp older than the newest one means time jumped back (a rosbag loop,
    a restarted simulator): the buffered frames then belong to another timeline, so the ring forgets
    them and ``add`` reports the jump. A repeated stamp replaces the stored frame.
    """

    def __init__(self, capacity: int) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"FrameRing capacity must be an integer >= 1, got {capacity!r}")
        self.capacity = capacity
        self._frames: OrderedDict[int, StampedFrame] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)

    def add(self, frame: StampedFrame) -> bool:
        """Keep ``frame``; returns True if its stamp jumped back and older frames were discarded."""
        with self._lock:
            jumped = bool(self._frames) and frame.stamp_ns < next(reversed(self._frames))
            if jumped:
                self._frames.clear()
            self._frames.pop(frame.stamp_ns, None)
            self._frames[frame.stamp_ns] = frame
            while len(self._frames) > self.capacity:
                self._frames.popitem(last=False)
            return jumped

    def get(self, stamp_ns: int) -> StampedFrame | None:
        with self._lock:
            return self._frames.get(stamp_ns)

    def latest(self) -> StampedFrame | None:
        with self._lock:
            return self._frames[next(reversed(self._frames))] if self._frames else None

    def stamps(self) -> list[int]:
        """Buffered stamps, oldest first."""
        with self._lock:
            return list(self._frames)

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()


class SequenceGaps:
    """Counts the messages a subscriber never received, from gaps in each publisher's sequence numbers.

    DDS numbers every sample a publisher sends; a jump from n to n + k + 1 means k samples of that
    publisher never reached the callback, whether lost on the wire or overwritten in a full subscription
    queue. A publisher's first sample only sets its baseline: what it sent before it matched was never on
    its way here. The last ``capacity`` publishers are remembered. Used from one thread (the executor).
    """

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self.missed = 0
        self.numbered = 0  # samples that carried a sequence number (not every RMW gives one)
        self._last: OrderedDict[bytes, int] = OrderedDict()

    def see(self, publisher: bytes, sequence: int | None) -> int:
        """Record one received sample; returns how many samples of ``publisher`` were missed before it."""
        if sequence is None:
            return 0
        self.numbered += 1
        last = self._last.pop(publisher, None)
        self._last[publisher] = sequence
        if len(self._last) > self.capacity:
            self._last.popitem(last=False)
        gap = sequence - last - 1 if last is not None and sequence > last else 0
        self.missed += gap
        return gap

    def forget_publishers(self) -> None:
        """Start new baselines (a new subscription): samples sent while nobody listened are not missed."""
        self._last.clear()
