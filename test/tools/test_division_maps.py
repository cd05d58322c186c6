"""Division maps: tokens placed on the frame by the tracker's crop rule, the hooks reading the right class,
the drawing touching only interacting tokens, and ``grm-track --show-division`` writing one overlay per
frame and dividing block at frame size."""

import cv2
import numpy as np
import pytest
import torch

from grm_ros.model import GRM, load_variant
from grm_ros.tools.division_maps import (
    TINT,
    DivisionProbe,
    LayerDivision,
    OverlayWriter,
    SearchRegion,
    class1_map,
    draw_decision,
)
from grm_ros.tracking import cli
from grm_ros.tracking.geometry import crop_origin, crop_size, sample_target
from grm_ros.tracking.tracker import TrackerConfig, tracker_for


def test_region_is_the_tracker_crop_window():
    box, factor = (101.3, 57.8, 31.0, 22.4), 4.0
    region = SearchRegion.around(box, factor)
    assert region.side == crop_size(box[2:], factor)
    assert (region.x, region.y) == crop_origin(box, region.side)
    # The crop's top-left pixel is the frame pixel at the region's corner.
    frame = np.zeros((300, 400, 3), np.uint8)
    frame[region.y, region.x] = 255
    crop, _ = sample_target(frame, box, factor, region.side)
    assert crop[0, 0].tolist() == [255, 255, 255] and crop.sum() == 3 * 255


def test_token_centres_and_boxes():
    region = SearchRegion(10, 20, 160)
    centres = region.token_centres(16)
    assert centres[0, 0].tolist() == [15, 25] and centres[15, 15].tolist() == [165, 175]
    assert centres[2, 5].tolist() == [65, 45]  # row 2 is y, column 5 is x
    inside = region.tokens_in((30, 40, 40, 20), 16)  # x 30..70 -> columns 2..5, y 40..60 -> rows 2..3
    assert inside.sum() == 8 and inside[2:4, 2:6].all()
    assert not region.tokens_in(None, 16).any() and not region.tokens_in((np.nan,) * 4, 16).any()


def test_class1_map_reads_class_one_of_hard_and_soft_decisions():
    onehot = torch.zeros(2, 16, 2)
    onehot[..., 0] = 1
    onehot[1, 5] = torch.tensor([0.0, 1.0])
    maps = class1_map(onehot)
    assert maps.shape == (2, 4, 4) and maps[0].sum() == 0 and maps[1, 1, 1] == 1 and maps[1].sum() == 1
    soft = torch.linspace(0, 1, 16)[None]
    np.testing.assert_allclose(class1_map(soft)[0].ravel(), soft[0].numpy())
    with pytest.raises(ValueError, match="square"):
        class1_map(torch.zeros(1, 15, 2))


def test_draw_tints_only_interacting_tokens():
    frame = np.full((60, 80, 3), 100, np.uint8)
    region = SearchRegion(20, 10, 40)  # 4 x 4 tokens of 10 px
    decision = np.zeros((4, 4))
    decision[1, 2] = 1  # token covering x 40..50, y 20..30
    drawn = draw_decision(frame, region, decision)
    assert drawn.shape == frame.shape
    tinted = drawn[25, 45].astype(int)
    assert np.all(np.sign(tinted - 100) == np.sign(np.array(TINT) - 100))
    assert drawn[25, 25].tolist() == [100] * 3 and drawn[5, 5].tolist() == [100] * 3
    np.testing.assert_array_equal(frame, 100)  # the input is untouched


def _small_model(bias: tuple[float, float] | None = None) -> GRM:
    torch.manual_seed(0)
    net = GRM(load_variant("small_cpu")).eval()
    if bias is not None:  # force every division MLP's answer: (class 0, class 1) logits
        for block in net.backbone.blocks:
            if block.attn.divide_predict is not None:
                last = block.attn.divide_predict[4]
                with torch.no_grad():
                    last.weight.zero_()
                    last.bias.copy_(torch.tensor(bias))
    return net


@pytest.mark.parametrize("interact", [False, True])
def test_probe_reads_the_trackers_division(interact):
    tracker = tracker_for(_small_model((-8.0, 8.0) if interact else (8.0, -8.0)), TrackerConfig())
    probe = DivisionProbe(tracker)
    frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    with probe.attached():
        target = tracker.start(frame, (60, 50, 24, 20))
        results, divisions = probe.update(frame)
    assert [r.target_id for r in results] == [target]
    region, layers = divisions[target]
    assert region == SearchRegion.around((60, 50, 24, 20), tracker.net_cfg.search_factor)
    dividing = [i for i, b in enumerate(tracker.engine.model.backbone.blocks) if b.attn.divide]
    assert sorted(layers) == dividing and len(dividing) >= 2
    grid = tracker.net_cfg.search_feat
    for layer in layers.values():
        assert layer.decision.shape == (grid, grid)
        assert layer.interacting.all() if interact else not layer.interacting.any()
        np.testing.assert_allclose(layer.probability, float(interact), atol=1e-3)
    # Outside attached() no hook runs, so no map can be read.
    with pytest.raises(RuntimeError, match="no division decision"):
        probe.update(frame)


def test_overlay_writer_one_png_per_block_at_frame_size(tmp_path):
    frame = np.zeros((90, 120, 3), np.uint8)
    region = SearchRegion(30, 20, 48)
    layers = {1: LayerDivision(np.eye(4)), 2: LayerDivision(np.eye(4), np.full((4, 4), 0.6))}
    written = OverlayWriter(tmp_path).write(7, frame, region, layers, (40, 30, 20, 20))
    assert sorted(p.name for p in written) == ["00007_block1.png", "00007_block2.png", "00007_block2_p.png"]
    for path in written:
        assert cv2.imread(str(path)).shape == frame.shape


def test_grm_track_show_division(tmp_path):
    frames = tmp_path / "img"
    frames.mkdir()
    rng = np.random.default_rng(1)
    for k in range(1, 5):
        cv2.imwrite(str(frames / f"{k:05d}.png"), rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    out_dir = tmp_path / "division"
    code = cli.main(["--frames", str(frames), "--box", "60,50,24,20", "--out", str(tmp_path / "boxes.txt"),
                     "--variant", "small_cpu", "--allow-random", "--show-division", str(out_dir)])
    assert code == 0
    blocks = [i for i, b in enumerate(GRM(load_variant("small_cpu")).backbone.blocks) if b.attn.divide]
    names = sorted(p.name for p in out_dir.iterdir())
    expected = sorted(f"{k:05d}_block{b}{s}.png" for k in range(2, 5) for b in blocks for s in ("", "_p"))
    assert names == expected
    assert all(cv2.imread(str(out_dir / n)).shape == (120, 160, 3) for n in names)
    assert len(np.loadtxt(tmp_path / "boxes.txt", delimiter=",")) == 4


def test_grm_track_show_division_needs_the_torch_backend(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["--frames", str(tmp_path), "--box", "1,1,5,5", "--out", str(tmp_path / "b.txt"),
                  "--backend", "onnxruntime", "--show-division", str(tmp_path / "d")])
    assert "--show-division goes with --frames and backend torch" in capsys.readouterr().err
