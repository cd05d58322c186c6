"""Hand-computed cases of the reference geometry (FACTS §9-10) and agreement of the device crops."""

import math

import cv2
import numpy as np
import pytest
import torch

from grm_ros.tracking.geometry import (
    box_to_crop_coords,
    clip_box,
    crop_batch_raw,
    crop_batch_torch,
    crop_origin,
    crop_size,
    decode_maps,
    hann_window,
    map_box_back,
    normalize_image,
    sample_target,
)


def coded_image(height: int = 8, width: int = 10) -> np.ndarray:
    """Pixel (r, c) holds (10 + c, 10 + r, 100): every value non-zero, so padding is recognisable."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([10 + cols, 10 + rows, np.full_like(rows, 100)], axis=-1).astype(np.uint8)


def textured_image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8), (5, 5), 1.5)


def test_crop_size_is_ceil_of_scaled_geometric_mean():
    assert crop_size((20, 20), 4.0) == 80
    assert crop_size((17, 50), 4.0) == 117  # sqrt(850) * 4 = 116.62
    assert crop_size((0.3, 0.2), 4.0) == 1  # sqrt(0.06) * 4 = 0.98
    assert crop_size((1000, 600), 5.0) == 3873  # sqrt(6e5) * 5 = 3872.98
    for bad in [(0, 10), (-1, 10), (float("nan"), 10)]:
        with pytest.raises(ValueError, match="finite and positive"):
            crop_size(bad, 4.0)


def test_crop_origin_rounds_half_to_even():
    assert crop_origin((0.5, 0.5, 20, 20), 80) == (-30, -30)  # -29.5 -> -30
    assert crop_origin((1.5, 2.5, 20, 20), 80) == (-28, -28)  # -28.5 -> -28, -27.5 -> -28
    assert crop_origin((10, 10, 20, 20), 80) == (-20, -20)


def test_crop_at_top_left_border_is_zero_padded():
    image = coded_image()
    crop, factor = sample_target(image, (0, 0, 2, 2), 2.0, 4)  # crop 4 px from (-1, -1): no resampling
    assert factor == 1.0
    assert np.all(crop[0] == 0) and np.all(crop[:, 0] == 0)
    np.testing.assert_array_equal(crop[1:, 1:], image[0:3, 0:3])


def test_crop_touching_bottom_right_border_drops_last_row_and_column():
    image = coded_image()  # 8 x 10
    crop, _ = sample_target(image, (8, 6, 2, 2), 2.0, 4)  # window cols 7..10, rows 5..8
    np.testing.assert_array_equal(crop[:2, :2], image[5:7, 7:9])
    # Column 9 and row 7 exist in the image but the authors' +1 padding replaces them with zeros.
    assert np.all(crop[:, 2:] == 0) and np.all(crop[2:, :] == 0)


def test_crop_ending_before_last_column_needs_no_padding():
    image = coded_image()
    crop, _ = sample_target(image, (5, 3, 2, 2), 2.0, 4)  # window cols 4..7 rows 2..5
    np.testing.assert_array_equal(crop, image[2:6, 4:8])


def test_huge_box_crop_holds_the_whole_image_but_its_last_row_and_column():
    image = coded_image()
    crop, factor = sample_target(image, (-5, -5, 20, 20), 2.0, 40)  # crop 40 px from (-15, -15)
    assert factor == 1.0
    np.testing.assert_array_equal(crop[15:22, 15:24], image[:7, :9])
    assert crop.astype(int).sum() == image[:7, :9].astype(int).sum()


def test_tiny_box_crop_is_one_replicated_pixel():
    image = coded_image()
    crop, factor = sample_target(image, (4, 4, 0.3, 0.2), 4.0, 16)  # crop 1 px at round(3.65), round(3.6)
    assert factor == 16.0
    assert np.all(crop == image[4, 4])


def test_crop_outside_the_image_is_black():
    crop, _ = sample_target(coded_image(), (50, 50, 2, 2), 2.0, 4)
    assert not crop.any()


def test_one_pixel_high_frame_shows_nothing_on_both_paths():
    image = coded_image(height=1)  # its only row is the last row, which the authors' padding hides
    reference, _ = sample_target(image, (2, 0, 4, 1), 2.0, 8)
    frame = torch.from_numpy(image).permute(2, 0, 1)
    device, _ = crop_batch_raw(frame, torch.tensor([[2.0, 0, 4, 1]]), 2.0, 8)
    assert not reference.any() and not device.any() and device.shape == (1, 3, 8, 8)


def test_sample_target_rejects_bad_boxes_and_images():
    image = coded_image()
    for box, message in [((0, 0, 0, 2), "positive"), ((0, 0, 2, -1), "positive"),
                         ((float("nan"), 0, 2, 2), "non-finite"), ((0, 0, 2), "expected a box")]:
        with pytest.raises(ValueError, match=message):
            sample_target(image, box, 2.0, 4)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        sample_target(image.astype(np.float32), (0, 0, 2, 2), 2.0, 4)


BOXES = [(40, 30, 20, 16), (0, 0, 12, 12), (110, 80, 10, 10), (-6, -4, 20, 15), (118, 88, 2, 2),
         (30.5, 20.5, 7, 3), (0, 0, 120, 90), (-100, -80, 300, 250), (60, 45, 0.4, 0.3), (10, 10, 32, 32)]


@pytest.mark.parametrize(("factor", "out_size"), [(4.0, 64), (2.0, 32), (4.0, 256)])
def test_device_crops_match_reference_within_one_grey_level(factor, out_size):
    image = textured_image()
    frame = torch.from_numpy(image).permute(2, 0, 1)
    raw, factors = crop_batch_raw(frame, torch.tensor(BOXES), factor, out_size)
    for k, box in enumerate(BOXES):
        reference, resize = sample_target(image, box, factor, out_size)
        diff = np.abs(raw[k].permute(1, 2, 0).numpy() - reference)
        assert diff.max() <= 1.0, box
        assert (diff > 0).mean() < 0.2, box  # fixed-point rounding, not a geometric shift
        assert float(factors[k]) == resize


def test_device_crops_equal_reference_exactly_without_resampling():
    image = textured_image()
    boxes = [(40, 30, 16, 16), (-3, -2, 16, 16), (110, 80, 16, 16)]  # crop 64 -> 64: a pure copy + padding
    raw, _ = crop_batch_raw(torch.from_numpy(image).permute(2, 0, 1), torch.tensor(boxes), 4.0, 64)
    for k, box in enumerate(boxes):
        np.testing.assert_array_equal(raw[k].permute(1, 2, 0).numpy(), sample_target(image, box, 4.0, 64)[0])


def test_device_crops_match_cv2_area_shortcut_at_exact_half_scale():
    image = textured_image()  # cv2 switches INTER_LINEAR to INTER_AREA for exact 2x downscaling
    box = (40, 30, 32, 32)  # crop 128 -> 64
    raw, _ = crop_batch_raw(torch.from_numpy(image).permute(2, 0, 1), torch.tensor([box]), 4.0, 64)
    assert np.abs(raw[0].permute(1, 2, 0).numpy() - sample_target(image, box, 4.0, 64)[0]).max() <= 1.0


def test_device_crops_accept_per_box_factors_and_normalise():
    image = textured_image()
    frame = torch.from_numpy(image).permute(2, 0, 1)
    boxes = torch.tensor(BOXES[:2])
    crops, factors = crop_batch_torch(frame, boxes, torch.tensor([4.0, 6.0]), 64)
    wide, _ = crop_batch_raw(frame, boxes[1:], 6.0, 64)
    torch.testing.assert_close(crops[1], normalize_image(wide[0]))
    assert float(factors[1]) == 64 / crop_size(BOXES[1][2:], 6.0)
    reference = normalize_image(sample_target(image, BOXES[0], 4.0, 64)[0])
    np.testing.assert_allclose(crops[0].permute(1, 2, 0).numpy(), reference, atol=1.01 / 255 / 0.224)


def test_device_crops_reject_bad_boxes_and_frames():
    frame = torch.zeros(3, 10, 10, dtype=torch.uint8)
    for box in [(0, 0, 0, 2), (0, 0, 2, -1), (float("nan"), 0, 2, 2)]:
        with pytest.raises(ValueError, match="finite with positive size"):
            crop_batch_torch(frame, torch.tensor([box]), 2.0, 4)
    with pytest.raises(ValueError, match="3xHxW"):
        crop_batch_torch(frame.permute(1, 2, 0), torch.tensor([(0, 0, 2, 2)]), 2.0, 4)


def test_normalize_image_uses_imagenet_statistics():
    white = np.full((2, 2, 3), 255, np.uint8)
    expected = [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225]
    np.testing.assert_allclose(normalize_image(white)[0, 0], expected, rtol=1e-6)
    tensor = normalize_image(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
    black = torch.tensor([-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225])
    torch.testing.assert_close(tensor[0, :, 0, 0], black)


def test_hann_window_for_f16():
    window = hann_window(16)
    assert window.shape == (1, 1, 16, 16) and window.dtype == torch.float32
    edge = 0.5 * (1 - math.cos(2 * math.pi / 17))
    assert window[0, 0, 0, 0].item() == pytest.approx(0.0011399, abs=1e-7)
    assert window[0, 0, 0, 0].item() == pytest.approx(edge**2, rel=1e-6)
    peak = 0.5 * (1 - math.cos(2 * math.pi * 8 / 17))
    assert window.max().item() == pytest.approx(peak**2, rel=1e-6)  # cells 7 and 8 (k = 8, 9) share the peak
    torch.testing.assert_close(window, window.flip(-1))
    torch.testing.assert_close(window, window.transpose(-1, -2))


def test_decode_reads_box_on_windowed_map_and_confidence_on_raw_map():
    side = 16
    score = torch.full((1, 1, side, side), 0.05)
    score[0, 0, 0, 0] = 0.9  # strong but far from the centre: the window suppresses it
    score[0, 0, 8, 7] = 0.6
    size = torch.full((1, 2, side, side), 0.25)
    offset = torch.full((1, 2, side, side), 0.5)
    boxes, confidence = decode_maps(score, size, offset, hann_window(side))
    torch.testing.assert_close(boxes[0], torch.tensor([7.5 / 16, 8.5 / 16, 0.25, 0.25]))
    assert confidence.item() == pytest.approx(0.9)


def test_map_box_back_hand_cases():
    prev = (100, 100, 20, 20)  # centre (110, 110); crop 128 px -> 256 px search: resize factor 2
    np.testing.assert_allclose(map_box_back((128, 128, 40, 40), prev, 256, 2.0), (100, 100, 20, 20))
    np.testing.assert_allclose(map_box_back((138, 128, 40, 20), prev, 256, 2.0), (105, 105, 20, 10))
    preds, prevs = [(128, 128, 40, 40), (0, 0, 8, 8)], [prev, (0, 0, 10, 10)]
    batch = map_box_back(preds, prevs, 256, np.array([2.0, 4.0]))
    np.testing.assert_allclose(batch, [(100, 100, 20, 20), (5 - 32 - 1, 5 - 32 - 1, 2, 2)])


def test_clip_box_hand_cases():
    """Expected values worked by hand from the authors' rule: x2 = x1 + w and y2 = y1 + h are taken
    before x1 and y1 are clipped; then x1 in [0, W - m], x2 in [m, W], w = max(m, x2 - x1) (same for y).
    The frame is 80 high and 100 wide, margin 10."""
    # crosses the left edge: x2 = -20 + 30 = 10 stays, x1 -> 0, so the box is cut to 10 px wide
    assert clip_box((-20, 30, 30, 20), 80, 100).tolist() == [0, 30, 10, 20]
    # crosses the top edge: y2 = -15 + 40 = 25, y1 -> 0, height 25
    assert clip_box((40, -15, 20, 40), 80, 100).tolist() == [40, 0, 20, 25]
    # crosses the right edge: x2 = 110 -> 100, width 100 - 85 = 15
    assert clip_box((85, 30, 25, 20), 80, 100).tolist() == [85, 30, 15, 20]
    # crosses the bottom edge: y2 = 90 -> 80, height 80 - 70 = 10
    assert clip_box((40, 70, 20, 20), 80, 100).tolist() == [40, 70, 20, 10]
    # top-left corner, the example: x2 = 10, y2 = 20
    assert clip_box((-20, -10, 30, 30), 80, 100).tolist() == [0, 0, 10, 20]
    # larger than the frame on every side: cut to the frame
    assert clip_box((-30, -40, 200, 200), 80, 100).tolist() == [0, 0, 100, 80]
    assert clip_box((95, 75, 20, 20), 80, 100).tolist() == [90, 70, 10, 10]  # keeps 10 px inside
    assert clip_box((50, 40, 2, 3), 80, 100).tolist() == [50, 40, 10, 10]  # at least 10 px of size
    # entirely left of the frame: x2 = -30 -> margin 10, x1 -> 0
    assert clip_box((-50, 20, 20, 20), 80, 100).tolist() == [0, 20, 10, 20]
    assert clip_box((200, 200, 5, 5), 80, 100).tolist() == [90, 70, 10, 10]


def test_clip_box_matches_the_authors_function_on_random_boxes():
    """The authors' clip_box, restated from their rule, against the vectorised one on many boxes."""
    def authors(box, H, W, margin):
        x1, y1, w, h = box
        x2, y2 = x1 + w, y1 + h
        x1, x2 = min(max(0, x1), W - margin), min(max(margin, x2), W)
        y1, y2 = min(max(0, y1), H - margin), min(max(margin, y2), H)
        return [x1, y1, max(margin, x2 - x1), max(margin, y2 - y1)]

    rng = np.random.default_rng(0)
    boxes = np.column_stack([rng.uniform(-200, 300, (500, 2)), rng.uniform(0.5, 250, (500, 2))])
    ours = clip_box(boxes, 80, 100)
    for box, got in zip(boxes, ours, strict=True):
        np.testing.assert_allclose(got, authors(box.tolist(), 80, 100, 10), rtol=0, atol=0)


def test_hann_window_is_bit_exact_with_the_authors_formula():
    for side in (8, 16, 20):
        k = torch.arange(1, side + 1).float()
        h = 0.5 * (1 - torch.cos((2 * math.pi / (side + 1)) * k))
        assert torch.equal(hann_window(side), (h[:, None] * h[None, :]).view(1, 1, side, side))


@pytest.mark.parametrize("box", [(30, 40, 20, 10), (0.5, 7.25, 3, 90), (-5, -5, 300, 200)])
@pytest.mark.parametrize("centre", [(30, 40, 20, 10), (25.3, 31.7, 18, 12)])
def test_box_round_trips_through_crop_coordinates(box, centre):
    factor, out_size = 4.0, 256
    x, y, w, h = box_to_crop_coords(box, centre, factor, out_size) * out_size
    resize = out_size / crop_size(centre[2:], factor)
    back = map_box_back((x + w / 2, y + h / 2, w, h), centre, out_size, resize)
    np.testing.assert_allclose(back, box, atol=1e-9)


def test_box_centred_on_crop_centre_lands_in_the_middle():
    coords = box_to_crop_coords((30, 40, 20, 10), (30, 40, 20, 10), 2.0, 128)
    np.testing.assert_allclose(coords[:2] + coords[2:] / 2, (0.5, 0.5))
    np.testing.assert_allclose(coords[2:] * crop_size((20, 10), 2.0), (20, 10))
