"""The Tracker with a small random-weight GRM: batching, geometry paths, states, updates, bad input."""

import numpy as np
import pytest
import torch

from grm_ros.model import load_variant
from grm_ros.model.engine import EngineConfig, InferenceEngine, resolve_device, resolve_dtype
from grm_ros.tracking import TemplateUpdateConfig, TrackerConfig, TrackState, tracker_for
from grm_ros.tracking.geometry import (
    clip_box,
    crop_size,
    decode_maps,
    hann_window,
    map_box_back,
    scale_change_penalty,
    size_map_penalty,
)
from grm_ros.tracking.tracker import TRACKER_FALLBACK, Tracker, build_tracker

EXTRA_BOXES = [(100, 20, 30, 20), (5, 70, 16, 40)]


def track(model, frames, boxes, **cfg):
    tracker = tracker_for(model, TrackerConfig(**cfg))
    for box in boxes:
        tracker.start(frames[0], box)
    return [tracker.update(frame) for frame in frames[1:]]


def as_array(results):
    return np.array([[[*r.box, r.confidence] for r in frame] for frame in results])


def test_run_is_deterministic_and_results_are_well_formed(model, sequence):
    frames, gt = sequence
    first = track(model, frames, [gt[0]])
    second = track(model, frames, [gt[0]])
    np.testing.assert_array_equal(as_array(first), as_array(second))
    for age, (result,) in enumerate(first, start=1):
        assert result.target_id == 1 and result.age == age and result.state is TrackState.TRACKING
        assert 0.0 <= result.confidence <= 1.0
        x, y, w, h = result.box
        assert 0 <= x <= 160 - 10 and 0 <= y <= 120 - 10 and 10 <= w <= 160 and 10 <= h <= 120
    assert len({r.box for (r,) in first}) == len(first)  # the box actually moves


def test_batched_targets_equal_single_targets(model, sequence):
    frames, gt = sequence
    boxes = [gt[0], *EXTRA_BOXES]
    together = as_array(track(model, frames, boxes))
    alone = np.concatenate([as_array(track(model, frames, [box])) for box in boxes], axis=1)
    np.testing.assert_allclose(together[..., :4], alone[..., :4], atol=1e-3)
    np.testing.assert_allclose(together[..., 4], alone[..., 4], atol=1e-5)


def test_reference_and_device_geometry_agree_within_a_pixel(model, sequence):
    """Per frame from the same states: with random weights the score map is flat enough that a one-grey-level
    crop difference can move the arg-max to another cell, after which free-running trajectories diverge."""
    frames, gt = sequence
    boxes = [gt[0], *EXTRA_BOXES]
    trackers = [tracker_for(model, TrackerConfig(geometry=geometry)) for geometry in ("reference", "device")]
    for tracker in trackers:
        for box in boxes:
            tracker.start(frames[0], box)
    for frame in frames[1:]:
        reference, device = (as_array([tracker.update(frame)])[0] for tracker in trackers)
        assert np.abs(reference[:, :4] - device[:, :4]).max() < 1.0
        assert np.abs(reference[:, 4] - device[:, 4]).max() < 1e-3
        for target_id, target in trackers[1].targets.items():
            target.box = trackers[0].targets[target_id].box.copy()


def test_bgr_flag_and_tensor_frames_give_the_same_results(model, sequence):
    frames, gt = sequence
    rgb = as_array(track(model, frames, [gt[0]]))
    bgr = as_array(track(model, [f[..., ::-1] for f in frames], [gt[0]], color_order="bgr"))  # strided views
    tensors = as_array(track(model, [torch.from_numpy(f).permute(2, 0, 1) for f in frames], [gt[0]]))
    reference_tensors = as_array(track(model, [torch.from_numpy(f).permute(2, 0, 1) for f in frames], [gt[0]],
                                       geometry="reference"))
    np.testing.assert_array_equal(rgb, bgr)
    np.testing.assert_array_equal(rgb, tensors)
    np.testing.assert_array_equal(as_array(track(model, frames, [gt[0]], geometry="reference")),
                                  reference_tensors)


@pytest.mark.parametrize(("box", "message"), [
    ((10, 10, 0, 20), "positive width and height"),
    ((10, 10, 20, -5), "positive width and height"),
    ((float("nan"), 10, 20, 20), "NaN or infinity"),
    ((10, 10, float("inf"), 20), "NaN or infinity"),
    ((200, 10, 20, 20), "entirely outside"),
    ((-30, 10, 20, 20), "entirely outside"),
    ((10, 10, 20), "4 numbers"),
])
def test_bad_start_boxes_are_rejected(model, sequence, box, message):
    tracker = tracker_for(model)
    with pytest.raises(ValueError, match=message):
        tracker.start(sequence[0][0], box)
    assert tracker.targets == {}


@pytest.mark.parametrize(("frame", "message"), [
    (np.zeros((10, 10), np.uint8), "HxWx3 uint8"),
    (np.zeros((10, 10, 3), np.float32), "HxWx3 uint8"),
    (torch.zeros(10, 10, 3), "3xHxW"),
    ([[0, 0, 0]], "numpy array or a torch tensor"),
])
def test_bad_frames_are_rejected(model, frame, message):
    with pytest.raises(ValueError, match=message):
        tracker_for(model).update(frame)


def test_frame_size_change_keeps_tracking_inside_the_new_frame(model, sequence):
    frames, _ = sequence
    tracker = tracker_for(model)
    tracker.start(frames[0], (120, 90, 30, 20))
    small = np.ascontiguousarray(frames[1][:60, :80])
    (result,) = tracker.update(small)
    x, y, w, h = result.box
    assert 0 <= x <= 70 and 0 <= y <= 50 and x + w <= 80 and y + h <= 60
    (result,) = tracker.update(frames[2])  # and back to the full size
    assert result.age == 2


def test_target_lifecycle_ids_stop_and_reacquire(model, sequence):
    frames, gt = sequence
    tracker = tracker_for(model)
    first = tracker.start(frames[0], gt[0], label="person")
    second = tracker.start(frames[0], EXTRA_BOXES[0])
    assert (first, second) == (1, 2)
    assert tracker.start(frames[0], EXTRA_BOXES[1], target_id=7) == 7
    assert tracker.start(frames[0], EXTRA_BOXES[1]) == 8
    with pytest.raises(ValueError, match="already tracked"):
        tracker.start(frames[0], gt[0], target_id=7)
    results = tracker.update(frames[1])
    assert [r.target_id for r in results] == [1, 2, 7, 8] and results[0].label == "person"
    assert tracker.stop(2) and not tracker.stop(2)
    tracker.reacquire(first, frames[1], gt[1])
    assert tracker.targets[first].age == 0 and tracker.targets[first].label == "person"
    np.testing.assert_array_equal(tracker.targets[first].box, gt[1])
    with pytest.raises(ValueError, match="not tracked"):
        tracker.reacquire(2, frames[1], gt[1])
    assert tracker.stop_all() == 3 and tracker.update(frames[2]) == []


def test_lost_target_searches_a_wider_region_and_maps_back_from_it(model, sequence):
    frames, gt = sequence
    captured = []
    handle = model.box_head.register_forward_hook(lambda _m, _i, out: captured.append(out))  # the maps
    try:
        tracker = tracker_for(model, TrackerConfig(lost_threshold=1.0, recover_threshold=1.0, lost_after=1,
                                               lost_search_scale=1.5, scale_penalty=0.0, size_lr=1.0))
        tracker.start(frames[0], gt[0])
        (first,) = tracker.update(frames[1])
        assert first.state is TrackState.LOST  # every confidence is below 1
        (second,) = tracker.update(frames[2])
    finally:
        handle.remove()
    assert second.state is TrackState.LOST
    cfg = model.cfg
    out = captured[-1]
    window = hann_window(cfg.search_feat)
    pred, confidence = decode_maps(*out, window)
    resize = cfg.search_size / crop_size(first.box[2:], cfg.search_factor * 1.5)
    expected = clip_box(map_box_back(pred[0].double().numpy() * cfg.search_size, first.box, cfg.search_size,
                                     resize), 120, 160)
    np.testing.assert_allclose(second.box, expected, atol=1e-9)
    assert second.confidence == pytest.approx(confidence.item())


def test_default_loop_penalises_size_jumps_and_smooths_the_size(model, sequence):
    """The product loop: the peak is read from score x window x scale-change penalty, and the size moves
    by size_lr x confidence x penalty of the way to the estimate, while the centre follows it fully."""
    frames, gt = sequence
    captured = []
    handle = model.box_head.register_forward_hook(lambda _m, _i, out: captured.append(out))  # the maps
    try:
        config = TrackerConfig(scale_penalty=0.3, size_lr=0.5)
        tracker = tracker_for(model, config)
        tracker.start(frames[0], gt[0])
        (result,) = tracker.update(frames[1])
    finally:
        handle.remove()
    cfg, out = model.cfg, captured[-1]
    prev = np.asarray(gt[0], dtype=np.float64)
    crop = crop_size(prev[2:], cfg.search_factor)
    prior = torch.from_numpy(prev[None, 2:] / crop)
    score, size, offset = out
    penalty = size_map_penalty(size, prior, 0.3)
    pred, confidence = decode_maps(score, size, offset,
                                   hann_window(cfg.search_feat), penalty)
    mapped = map_box_back(pred[0].double().numpy() * cfg.search_size, prev, cfg.search_size,
                          cfg.search_size / crop)
    chosen = float(scale_change_penalty(pred[0, 2:].double(), prior[0], 0.3))
    rate = 0.5 * chosen * confidence.item()
    size = prev[2:] * (1 - rate) + mapped[2:] * rate
    centre = mapped[:2] + mapped[2:] / 2
    expected = clip_box(np.concatenate([centre - size / 2, size]), 120, 160)
    np.testing.assert_allclose(result.box, expected, atol=1e-6)
    assert 0 < rate < 0.5


def test_paper_loop_has_no_penalty_and_no_smoothing():
    paper = TrackerConfig.paper()
    assert paper.scale_penalty == 0.0 and paper.size_lr == 1.0 and paper.geometry == "reference"
    with pytest.raises(ValueError, match="size_lr"):
        TrackerConfig(size_lr=0.0)
    with pytest.raises(ValueError, match="scale_penalty"):
        TrackerConfig(scale_penalty=float("nan"))


def test_template_update_wiring_refreshes_and_reverts(model, sequence):
    frames, gt = sequence
    update = TemplateUpdateConfig(enabled=True, min_confidence=0.0, min_iou=0.0, stable_frames=1, interval=1,
                                  probation=1, revert_margin=0.0)
    tracker = tracker_for(model, TrackerConfig(template_update=update))
    target_id = tracker.start(frames[0], gt[0])
    target = tracker.targets[target_id]
    anchor = target.anchor.clone()
    tracker.update(frames[1])  # no previous box yet for the policy: keep
    assert target.template is target.anchor
    (second,) = tracker.update(frames[2])  # good frame -> refresh from this frame at this box
    assert target.template is not target.anchor
    expected = tracker._templates(tracker._prepare(frames[2])[0], np.array([second.box]))
    torch.testing.assert_close(target.template, expected)
    torch.testing.assert_close(target.anchor, anchor)
    target.policy._baseline = 2.0  # force the probation frame to look worse than its baseline
    tracker.update(frames[3])
    assert target.template is target.anchor


def test_dual_template_runs_beside_the_anchor_and_averages_the_maps(model, sequence):
    frames, gt = sequence
    update = TemplateUpdateConfig(enabled=True, mode="dual", min_confidence=0.0, min_iou=0.0, stable_frames=1,
                                  interval=1, probation=1, revert_margin=0.0)
    tracker = tracker_for(model, TrackerConfig(template_update=update))
    target_id = tracker.start(frames[0], gt[0])
    target = tracker.targets[target_id]
    tracker.update(frames[1])
    (second,) = tracker.update(frames[2])  # refresh: a second template, the anchor stays in use
    assert target.template is target.anchor and target.dynamic is not None
    expected = tracker._templates(tracker._prepare(frames[2])[0], np.array([second.box]))
    torch.testing.assert_close(target.dynamic, expected)

    seen: list[int] = []
    engine_maps = tracker.engine.maps
    tracker.engine.maps = lambda z, x: seen.append(z.shape[0]) or engine_maps(z, x)
    search = torch.rand(1, 3, model.cfg.search_size, model.cfg.search_size)
    fused = tracker._maps([target], search)
    assert seen == [2]  # one forward, both templates
    alone = [engine_maps(z, search) for z in (target.anchor, target.dynamic)]
    for mine, a, b in zip(fused, *alone, strict=True):
        torch.testing.assert_close(mine, (a + b) / 2)
    tracker.engine.maps = engine_maps
    target.policy._baseline = 2.0  # the probation frame looks worse than its baseline: drop the dynamic one
    tracker.update(frames[3])
    assert target.dynamic is None and target.template is target.anchor


def test_template_update_is_off_by_default(model, sequence):
    frames, gt = sequence
    tracker = tracker_for(model)
    target_id = tracker.start(frames[0], gt[0])
    target = tracker.targets[target_id]
    for frame in frames[1:]:
        tracker.update(frame)
    assert target.template is target.anchor


def test_config_validation_and_threshold_choice(model):
    with pytest.raises(ValueError, match="geometry"):
        TrackerConfig(geometry="gpu")
    with pytest.raises(ValueError, match="color_order"):
        TrackerConfig(color_order="rgba")
    with pytest.raises(ValueError, match="lost_search_scale"):
        TrackerConfig(lost_search_scale=0.5)
    with pytest.raises(ValueError, match="flap"):
        TrackerConfig(lost_threshold=0.5, recover_threshold=0.4)
    with pytest.raises(ValueError, match="unknown field"):
        TrackerConfig(template_update={"enabled": True, "bogus": 1})
    assert TrackerConfig(template_update={"enabled": True}).template_update.enabled
    assert tracker_for(model, TrackerConfig(division_threshold=0.4)).threshold == 0.4
    assert tracker_for(model, TrackerConfig(benchmark="lasot")).threshold == model.cfg.threshold_for("LASOT")
    engine = InferenceEngine(model, EngineConfig(backend="torch"), threshold=0.4)
    assert Tracker(engine, TrackerConfig(division_threshold=0.4)).threshold == 0.4
    with pytest.raises(ValueError, match=r"engine runs division threshold 0\.4"):
        Tracker(engine, TrackerConfig())  # the variant's default tau, which this engine did not bake in
    paper = TrackerConfig.paper("lasot")
    assert paper.geometry == "reference" and paper.lost_search_scale == 1.0
    assert not paper.template_update.enabled


def test_unset_state_settings_take_the_networks_calibration():
    small, vitb = load_variant("small_cpu"), load_variant("vitb_256")
    calibrated = TrackerConfig().for_network(small)
    assert (calibrated.lost_threshold, calibrated.recover_threshold, calibrated.lost_search_scale) == \
        (0.55, 0.65, 1.0)
    fallback = TrackerConfig().for_network(vitb)  # no calibration in the variant
    assert (fallback.lost_threshold, fallback.recover_threshold, fallback.lost_search_scale) == \
        tuple(TRACKER_FALLBACK[k] for k in ("lost_threshold", "recover_threshold", "lost_search_scale"))
    mixed = TrackerConfig(lost_threshold=0.6, lost_search_scale=2.0).for_network(small)
    assert (mixed.lost_threshold, mixed.recover_threshold, mixed.lost_search_scale) == (0.6, 0.65, 2.0)
    TrackerConfig(lost_threshold=0.7)  # fine on its own: the recover threshold is not known yet
    with pytest.raises(ValueError, match="small_cpu's calibrated"):
        TrackerConfig(lost_threshold=0.7).for_network(small)  # above small_cpu's recover 0.65
    with pytest.raises(ValueError, match="for_network"):
        TrackerConfig().hysteresis()


def test_device_and_dtype_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        build_tracker(engine=EngineConfig(device="cuda:0"), allow_random=True)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        resolve_dtype("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("fp8", torch.device("cpu"))
    assert resolve_dtype("bf16", torch.device("cuda")) is torch.bfloat16
