"""Property-based fuzzing of the library tracker (issue 18): any boxes and frames, in any order.

Properties: the only exception is the documented refusal (ValueError), every result is finite, and every
TRACKING or LOST box lies inside the frame it was computed on.
"""

from __future__ import annotations

import numpy as np
import torch
from fuzzing import boxes, budget, near_boxes
from hypothesis import event, given
from hypothesis import strategies as st

from grm_ros.tracking import TrackState, tracker_for

MAX_PIXELS = 1 << 20  # frames up to 8k on a side, but at most a megapixel, to keep each example short


ORDINARY = st.tuples(st.integers(10, 480), st.integers(10, 640))
ANY_SIZE = st.one_of(st.tuples(st.integers(0, 16), st.integers(0, 16)), ORDINARY,
                     st.tuples(st.integers(0, 8192), st.integers(0, MAX_PIXELS // 8192)),
                     st.tuples(st.integers(0, MAX_PIXELS // 8192), st.integers(0, 8192)))


@st.composite
def frames(draw, sizes=ANY_SIZE, kinds=("rgb",) * 6 + ("tensor", "float", "grey", "rgba", "list")):
    """(frame, height, width): by default HxWx3 uint8 frames from 0 px to 8k on a side (near the minimum
    size, ordinary, very tall or very wide), or a wrong dtype, rank or channel count, a CHW tensor, or no
    array at all."""
    height, width = draw(sizes)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    kind = draw(st.sampled_from(kinds))
    frame = {"rgb": lambda: image, "tensor": lambda: torch.from_numpy(image).permute(2, 0, 1),
             "float": lambda: image.astype(np.float32), "grey": lambda: image[..., 0],
             "rgba": lambda: np.concatenate([image, image[..., :1]], axis=2),
             "list": lambda: image.tolist()[:2]}[kind]()
    return frame, height, width


@st.composite
def operations(draw) -> tuple[str, object, int, int, tuple[float, float, float, float], int]:
    """(kind, frame, height, width, box, target id): a start, reacquire or update with a box drawn around
    that frame."""
    frame, height, width = draw(st.one_of(frames(), frames(ORDINARY, ("rgb", "tensor"))))
    kind = draw(st.sampled_from(["start", "reacquire", "update", "update"]))
    return kind, frame, height, width, draw(boxes(max(width, 1), max(height, 1))), draw(st.integers(0, 3))


@st.composite
def ordinary_start(draw) -> tuple[str, object, int, int, tuple[float, float, float, float], int]:
    """A start on an ordinary frame with a box near it, so that most examples have a target to track."""
    frame, height, width = draw(frames(ORDINARY, ("rgb", "tensor")))
    return "start", frame, height, width, draw(near_boxes(width, height)), 0


@budget(200)
@given(first=ordinary_start(), ops=st.lists(operations(), min_size=1, max_size=8))
def test_any_boxes_and_frames_are_refused_or_tracked_inside_the_frame(model, first, ops):
    tracker = tracker_for(model)
    for kind, frame, height, width, box, target_id in [first, *ops]:
        try:
            if kind == "start":
                tracker.start(frame, box)
            elif kind == "reacquire":
                tracker.reacquire(target_id, frame, box)
            else:
                results = tracker.update(frame)
        except ValueError:  # the documented refusal; anything else fails the test
            event(f"{kind} refused")
            continue
        event(f"{kind} accepted" if kind != "update" else f"update of {len(results)} target(s)")
        if kind != "update":
            continue
        for r in results:
            assert np.isfinite([*r.box, r.confidence]).all(), r
            x, y, w, h = r.box
            if r.state is not TrackState.STOPPED:
                assert min(x, y) >= 0 and x + w <= width and y + h <= height, (r, width, height)
