"""Image payloads to RGB in numpy: every supported encoding, row padding, byte order and broken input."""

from __future__ import annotations

import array
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from grm_ros.ros.image_conversion import (
    ImageConversionError,
    ImageConverter,
    Mono16Scaling,
    compressed_to_rgb,
    raw_to_rgb,
    rgb_to_raw,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def _padded(pixels: np.ndarray, pad: int) -> tuple[int, bytes]:
    """Rows of ``pixels`` (H, W, C, any dtype) as bytes with ``pad`` junk bytes after each row."""
    rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8).reshape(pixels.shape[0], -1)
    junk = np.full((rows.shape[0], pad), 0xAB, np.uint8)
    return rows.shape[1] + pad, np.hstack([rows, junk]).tobytes()


@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize("encoding, channels", [
    ("rgb8", RGB), ("bgr8", RGB[:, :, ::-1]),
    ("rgba8", np.dstack([RGB, np.full(RGB.shape[:2], 9, np.uint8)])),
    ("bgra8", np.dstack([RGB[:, :, ::-1], np.full(RGB.shape[:2], 9, np.uint8)])),
])
def test_colour_encodings_give_rgb(encoding, channels, pad):
    step, data = _padded(np.ascontiguousarray(channels), pad)
    out = raw_to_rgb(encoding, 5, 7, step, data)
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, RGB)


def test_rgb8_is_a_view_of_the_message_buffer():
    step, data = _padded(RGB, 5)
    buffer = array.array("B", data)  # what rclpy hands a callback
    out = raw_to_rgb("rgb8", 5, 7, step, buffer)
    assert np.shares_memory(out, np.frombuffer(buffer, np.uint8))
    assert not out.flags.writeable


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_mono8_is_replicated_to_three_channels(encoding):
    grey = RGB[:, :, 0:1]
    step, data = _padded(np.ascontiguousarray(grey), 1)
    out = raw_to_rgb(encoding, 5, 7, step, data)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey[:, :, 0])


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("pad", [0, 1])
def test_mono16_is_scaled_by_the_frame_maximum(encoding, bigendian, pad):
    values = np.array([[0, 1000], [2000, 4000]], dtype=">u2" if bigendian else "<u2")
    step, data = _padded(values[:, :, None], pad)
    out = raw_to_rgb(encoding, 2, 2, step, data, is_bigendian=bigendian)
    np.testing.assert_array_equal(out[:, :, 0], [[0, 64], [128, 255]])
    np.testing.assert_array_equal(out[:, :, 2], out[:, :, 0])


def test_mono16_fixed_range_clips_and_an_all_zero_frame_stays_black():
    values = np.array([[500, 1000, 1500, 3000]], dtype="<u2")
    out = raw_to_rgb("mono16", 1, 4, 8, values.tobytes(), mono16=Mono16Scaling("range", 1000, 2000))
    np.testing.assert_array_equal(out[0, :, 0], [0, 0, 128, 255])
    zeros = raw_to_rgb("mono16", 1, 4, 8, np.zeros(4, "<u2").tobytes())
    assert not zeros.any()


@pytest.mark.parametrize("kwargs", [{"mode": "log"}, {"mode": "range", "low": 10, "high": 10},
                                    {"mode": "range", "low": 0, "high": 70000}])
def test_bad_mono16_scaling_is_refused(kwargs):
    with pytest.raises(ValueError, match="mono16"):
        Mono16Scaling(**kwargs)


def test_the_last_row_may_omit_its_padding():
    step, data = _padded(RGB, 4)
    np.testing.assert_array_equal(raw_to_rgb("rgb8", 5, 7, step, data[:-4]), RGB)


def test_truncated_data_is_refused_with_sizes():
    step, data = _padded(RGB, 0)
    with pytest.raises(ImageConversionError, match=r"needs 105 bytes of data, got 100 \(truncated"):
        raw_to_rgb("rgb8", 5, 7, step, data[:100])


def test_step_shorter_than_a_row_is_refused():
    with pytest.raises(ImageConversionError, match="step 20 is smaller than a row of pixels"):
        raw_to_rgb("rgb8", 5, 7, 20, bytes(200))


def test_unknown_encoding_is_refused_naming_the_supported_ones():
    with pytest.raises(ImageConversionError, match=r"unsupported image encoding 'yuv422'.*rgb8"):
        raw_to_rgb("yuv422", 5, 7, 14, bytes(70))


def test_empty_image_is_refused():
    with pytest.raises(ImageConversionError, match="no pixels"):
        raw_to_rgb("rgb8", 0, 7, 21, b"")


def test_compressed_png_round_trip_and_garbage():
    ok, png = cv2.imencode(".png", cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))
    assert ok
    np.testing.assert_array_equal(compressed_to_rgb("png", png.tobytes()), RGB)
    with pytest.raises(ImageConversionError, match="could not be decoded"):
        compressed_to_rgb("jpeg", b"not an image at all")
    with pytest.raises(ImageConversionError, match="no data"):
        compressed_to_rgb("jpeg", b"")


def test_rgb_to_raw_round_trips_through_raw_to_rgb():
    for encoding in ("rgb8", "bgr8"):
        height, width, step, data = rgb_to_raw(RGB, encoding)
        assert (height, width, step, len(data)) == (5, 7, 21, 105)
        np.testing.assert_array_equal(raw_to_rgb(encoding, height, width, step, data), RGB)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        rgb_to_raw(RGB[:, :, 0])


class RecordingBridge:
    """Stands in for cv_bridge.CvBridge to show which encodings the converter hands to it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def imgmsg_to_cv2(self, msg, desired_encoding: str) -> np.ndarray:
        self.calls.append((msg.encoding, desired_encoding))
        return RGB


def _message(encoding: str, pixels: np.ndarray) -> SimpleNamespace:
    step, data = _padded(pixels, 0)
    return SimpleNamespace(encoding=encoding, height=pixels.shape[0], width=pixels.shape[1], step=step,
                           data=data, is_bigendian=0)


def test_converter_uses_the_bridge_for_8_bit_and_numpy_for_16_bit():
    bridge = RecordingBridge()
    converter = ImageConverter(bridge=bridge)
    assert converter.backend == "cv_bridge"
    assert converter(_message("bgr8", RGB[:, :, ::-1])) is RGB
    grey16 = converter(_message("mono16", np.array([[[0], [100]]], dtype="<u2")))
    np.testing.assert_array_equal(grey16[0, :, 0], [0, 255])
    assert bridge.calls == [("bgr8", "rgb8")]
    plain = ImageConverter()
    assert plain.backend == "numpy"
    np.testing.assert_array_equal(plain(_message("bgr8", np.ascontiguousarray(RGB[:, :, ::-1]))), RGB)
