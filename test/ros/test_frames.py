"""The latest-frame slot drops instead of queuing; the stamp ring finds old frames and survives time jumps."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from grm_ros.ros.frames import FrameRing, LatestFrame, SequenceGaps, StampedFrame


def _frame(stamp: int, value: int = 0) -> StampedFrame:
    return StampedFrame(stamp, "cam", np.full((4, 6, 3), value, np.uint8))


def test_latest_frame_keeps_only_the_newest_and_counts_drops():
    slot = LatestFrame()
    assert slot.put(_frame(1)) is False
    assert slot.put(_frame(2)) is True
    assert slot.put(_frame(3)) is True
    taken = slot.take(timeout=0)
    assert taken is not None and taken.stamp_ns == 3
    assert slot.take(timeout=0) is None  # taken frames are not handed out twice
    assert (slot.dropped, slot.received) == (2, 3)
    assert slot.put(_frame(4)) is False  # the slot was empty: nothing dropped
    assert slot.dropped == 2


def test_take_waits_for_a_frame_from_another_thread_and_close_wakes_it():
    slot = LatestFrame()
    got: list[StampedFrame | None] = []
    reader = threading.Thread(target=lambda: got.append(slot.take(timeout=10)))
    reader.start()
    slot.put(_frame(7))
    reader.join(timeout=10)
    assert got[0] is not None and got[0].stamp_ns == 7

    closer = threading.Thread(target=lambda: got.append(slot.take(timeout=10)))
    closer.start()
    slot.close()
    closer.join(timeout=10)
    assert not closer.is_alive() and got[1] is None
    slot.reopen()
    slot.put(_frame(8))
    assert slot.take(timeout=0).stamp_ns == 8


def test_ring_finds_frames_by_stamp_and_evicts_the_oldest():
    ring = FrameRing(3)
    for stamp in (10, 20, 30, 40):
        assert ring.add(_frame(stamp, stamp)) is False
    assert ring.stamps() == [20, 30, 40]
    assert ring.get(10) is None
    assert int(ring.get(30).image[0, 0, 0]) == 30
    assert ring.latest().stamp_ns == 40
    assert ring.get(35) is None


def test_ring_forgets_the_old_timeline_when_stamps_jump_back():
    ring = FrameRing(5)
    for stamp in (100, 200, 300):
        ring.add(_frame(stamp))
    assert ring.add(_frame(50)) is True
    assert ring.stamps() == [50]
    assert ring.add(_frame(50, 9)) is False  # a repeated stamp replaces, it is not a jump
    assert len(ring) == 1 and int(ring.get(50).image[0, 0, 0]) == 9
    ring.clear()
    assert ring.latest() is None


def test_stamped_frame_size_is_width_height():
    assert _frame(1).size == (6, 4)


@pytest.mark.parametrize("capacity", [0, -1, 2.5])
def test_ring_refuses_a_bad_capacity(capacity):
    with pytest.raises(ValueError, match="capacity"):
        FrameRing(capacity)


def test_sequence_gaps_count_what_each_publisher_sent_that_never_arrived():
    gaps = SequenceGaps(capacity=2)
    assert [gaps.see(b"a", n) for n in (7, 8, 11, 12)] == [0, 0, 2, 0]  # 7: baseline; 9 and 10 missed
    assert gaps.see(b"b", 3) == 0 and gaps.see(b"b", 5) == 1  # another publisher has its own numbers
    assert gaps.see(b"a", 12) == 0 and gaps.see(b"a", 4) == 0  # repeats and restarts are not gaps
    assert gaps.see(b"a", 6) == 1
    assert gaps.see(b"c", 1) == 0 and gaps.see(b"b", 9) == 0  # "b" was forgotten (capacity 2): new baseline
    assert gaps.see(b"x", None) == 0  # an RMW without sequence numbers
    assert (gaps.missed, gaps.numbered) == (4, 11)
    gaps.forget_publishers()
    assert gaps.see(b"a", 100) == 0 and gaps.missed == 4
