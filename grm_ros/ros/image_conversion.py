"""sensor_msgs/Image and CompressedImage payloads to RGB arrays, and back, in plain numpy.

No rclpy import: the functions take the message's fields (or any object that has them). The pixel
array is a view of the message buffer wherever the layout allows (rgb8 with any ``step``): the only
copy is the channel reorder or the scaling that the encoding needs. ``step`` row padding and
``is_bigendian`` are honoured; a buffer shorter than ``step * height`` is refused.

16-bit mono (mono16, 16UC1) becomes 8-bit grey by one of two rules (``Mono16Scaling``):
"max" maps 0..(the frame's maximum) to 0..255, so a depth or thermal image is visible whatever its
units; "range" maps a fixed [low, high] to 0..255 and clips, so brightness is comparable across frames.

Where cv_bridge imports (a ROS install), ``ImageConverter`` lets it decode the 8-bit encodings it
knows; 16-bit scaling stays the rule above either way, so the tracker sees the same pixels everywhere.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

# encoding -> (channels, bytes per channel, channel indices giving R, G, B; None for grey)
_LAYOUTS: dict[str, tuple[int, int, tuple[int, int, int] | None]] = {
    "rgb8": (3, 1, (0, 1, 2)),
    "bgr8": (3, 1, (2, 1, 0)),
    "rgba8": (4, 1, (0, 1, 2)),
    "bgra8": (4, 1, (2, 1, 0)),
    "mono8": (1, 1, None),
    "8UC1": (1, 1, None),
    "mono16": (1, 2, None),
    "16UC1": (1, 2, None),
}
SUPPORTED_ENCODINGS = tuple(_LAYOUTS)
MONO16_SCALINGS = ("max", "range")


class ImageConversionError(ValueError):
    """An image message that cannot be turned into pixels; the message says which field is wrong."""


@dataclass(frozen=True)
class Mono16Scaling:
    """How 16-bit grey becomes 8-bit: see the module docstring."""

    mode: str = "max"
    low: float = 0.0
    high: float = 65535.0

    def __post_init__(self) -> None:
        if self.mode not in MONO16_SCALINGS:
            raise ValueError(f"mono16 scaling must be one of {MONO16_SCALINGS}, got {self.mode!r}")
        if self.mode == "range" and not (0.0 <= self.low < self.high <= 65535.0):
            raise ValueError(f"mono16 range must satisfy 0 <= low < high <= 65535, "
                             f"got [{self.low}, {self.high}]")

    def to_uint8(self, grey16: np.ndarray) -> np.ndarray:
        if self.mode == "max":
            low, high = 0.0, float(grey16.max()) if grey16.size else 0.0
            if high <= 0:
                return np.zeros(grey16.shape, np.uint8)
        else:
            low, high = self.low, self.high
        scaled = (grey16.astype(np.float32) - low) * (255.0 / (high - low))
        return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def _pixels(encoding: str, height: int, width: int, step: int, data: Any, is_bigendian: bool) -> np.ndarray:
    """The (H, W, C) view of ``data`` in the encoding's own dtype, without copying."""
    channels, depth, _ = _LAYOUTS[encoding]
    if height < 1 or width < 1:
        raise ImageConversionError(f"image has no pixels: {width}x{height}")
    row = width * channels * depth
    if step < row:
        raise ImageConversionError(
            f"{encoding} image {width}x{height}: step {step} is smaller than a row of pixels ({row} bytes)")
    buffer = np.frombuffer(data, np.uint8)
    need = step * (height - 1) + row  # the last row's padding may be left out
    if buffer.size < need:
        raise ImageConversionError(
            f"{encoding} image {width}x{height} (step {step}) needs {need} bytes of data, got {buffer.size} "
            "(truncated message?)")
    rows = np.lib.stride_tricks.as_strided(buffer, shape=(height, row), strides=(step, 1), writeable=False)
    if depth == 1:
        return rows.reshape(height, width, channels)
    return rows.view(np.dtype(">u2" if is_bigendian else "<u2")).reshape(height, width, channels)


def raw_to_rgb(encoding: str, height: int, width: int, step: int, data: Any, is_bigendian: bool = False,
               mono16: Mono16Scaling | None = None) -> np.ndarray:
    """An HxWx3 uint8 RGB array from the fields of a sensor_msgs/Image.

    rgb8 comes back as a read-only view of ``data``; every other encoding is converted once.
    """
    if encoding not in _LAYOUTS:
        raise ImageConversionError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    pixels = _pixels(encoding, height, width, step, data, is_bigendian)
    _, depth, order = _LAYOUTS[encoding]
    if order == (0, 1, 2) and pixels.shape[2] == 3:
        return pixels
    if order is not None:
        return np.ascontiguousarray(pixels[:, :, list(order)])
    grey = (mono16 or Mono16Scaling()).to_uint8(pixels[:, :, 0]) if depth == 2 else pixels[:, :, 0]
    return np.repeat(grey[:, :, None], 3, axis=2)


def compressed_to_rgb(fmt: str, data: Any) -> np.ndarray:
    """An HxWx3 uint8 RGB array from a sensor_msgs/CompressedImage (jpeg, png, ... as OpenCV decodes)."""
    buffer = np.frombuffer(data, np.uint8)
    if buffer.size == 0:
        raise ImageConversionError(f"compressed image ({fmt or 'no format'}) has no data")
    decoded = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if decoded is None:
        raise ImageConversionError(
            f"compressed image with format {fmt!r} ({buffer.size} bytes) could not be decoded")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def rgb_to_raw(rgb: np.ndarray, encoding: str = "rgb8") -> tuple[int, int, int, bytes]:
    """(height, width, step, data) of a tightly packed rgb8 or bgr8 image, for building outgoing messages."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 array, got shape {rgb.shape} dtype {rgb.dtype}")
    if encoding not in ("rgb8", "bgr8"):
        raise ValueError(f"rgb_to_raw writes rgb8 or bgr8, not {encoding!r}")
    pixels = rgb[:, :, ::-1] if encoding == "bgr8" else rgb
    height, width = rgb.shape[:2]
    return height, width, width * 3, np.ascontiguousarray(pixels).tobytes()


def load_cv_bridge() -> Any | None:
    """A ``cv_bridge.CvBridge`` where the ROS package is installed, else None."""
    try:
        return importlib.import_module("cv_bridge").CvBridge()
    except ImportError:
        return None


class ImageConverter:
    """Turns Image messages into RGB arrays: cv_bridge for the 8-bit encodings when given one, numpy else."""

    def __init__(self, mono16: Mono16Scaling | None = None, bridge: Any | None = None) -> None:
        self.mono16 = mono16 or Mono16Scaling()
        self.bridge = bridge

    @property
    def backend(self) -> str:
        return "cv_bridge" if self.bridge is not None else "numpy"

    def __call__(self, msg: Any) -> np.ndarray:
        encoding = msg.encoding
        if self.bridge is not None and encoding in _LAYOUTS and _LAYOUTS[encoding][1] == 1:
            convert: Callable[..., np.ndarray] = self.bridge.imgmsg_to_cv2
            return convert(msg, desired_encoding="rgb8")
        return raw_to_rgb(encoding, msg.height, msg.width, msg.step, msg.data, bool(msg.is_bigendian),
                          self.mono16)
