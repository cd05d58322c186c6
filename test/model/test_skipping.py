"""Division skipping: division_modes, fixed layers, loading the parent checkpoint, calibration."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from grm_ros.model import GRM, load_model, load_variant, save_checkpoint
from grm_ros.model.checkpoint import load_state_dict_strict, read_state_dict
from grm_ros.model.skipping import (
    DivisionRecorder,
    derive_config,
    drop_skipped_division_keys,
    propose_modes,
    write_variant,
)
from grm_ros.tools.calibrate import main as calibrate_main

# Blocks 1, 2 always two-stream, block 4 always one-stream (final division bias), 3 and 5 learned.
FORCED = {1: (8.0, -8.0), 2: (8.0, -8.0), 4: (-8.0, 8.0)}
MODES = ("two_stream", "two_stream", "auto", "one_stream", "auto")


def biased_model() -> GRM:
    torch.manual_seed(0)
    model = GRM(load_variant("small_cpu")).eval()
    with torch.no_grad():
        for block, bias in FORCED.items():
            model.backbone.blocks[block].attn.divide_predict[4].bias.copy_(torch.tensor(bias))
    return model


def inputs(model: GRM, count: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    cfg = model.cfg
    return (torch.randn(count, 3, cfg.template_size, cfg.template_size, generator=gen),
            torch.randn(count, 3, cfg.search_size, cfg.search_size, generator=gen))


def test_division_modes_are_validated() -> None:
    cfg = load_variant("small_cpu")
    assert cfg.division_modes == () and cfg.division_mode(3) == "auto"
    with pytest.raises(ValueError, match="one entry per dividing block"):
        replace(cfg, division_modes=("auto",))
    with pytest.raises(ValueError, match="must be one of"):
        replace(cfg, division_modes=("auto", "auto", "sometimes", "auto", "auto"))
    derived = derive_config(cfg, MODES)
    assert derived.name == "small_cpu_skip" and derived.division_mode(0) == "auto"
    assert [derived.division_mode(i) for i in range(1, 6)] == list(MODES)


@pytest.mark.parametrize("path", ["fast", "reference"])
@torch.inference_mode()
def test_fixed_layers_reproduce_constant_divisions(path: str) -> None:
    original = biased_model().set_attention(path)
    derived = GRM(derive_config(original.cfg, MODES)).eval().set_attention(path)
    state, dropped = drop_skipped_division_keys(original.state_dict(), derived.cfg)
    derived.load_state_dict(state, strict=True)
    assert {k.split(".")[2] for k in dropped} == {"1", "2", "4"} and len(dropped) == 3 * 6
    assert [b.attn.divide_predict is None for b in derived.backbone.blocks] == [True, True, True, False, True,
                                                                                False]
    template, search = inputs(original)
    a, b = original(template, search), derived(template, search)
    for key in ("score_map", "size_map", "offset_map"):
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-5)


@pytest.mark.parametrize("last", ["auto", "two_stream", "one_stream"])
@torch.inference_mode()
def test_fixed_layers_fast_path_matches_reference(last: str) -> None:
    """Also with the last layer fixed, where the fast path attends from the search rows alone."""
    derived = GRM(derive_config(load_variant("small_cpu"), (*MODES[:-1], last))).eval()
    template, search = inputs(derived)
    fast = derived(template, search)
    ref = derived.set_attention("reference")(template, search)
    for key in ("score_map", "size_map", "offset_map"):
        torch.testing.assert_close(fast[key], ref[key], rtol=0, atol=1e-4)


def test_derived_variant_loads_the_parent_checkpoint(tmp_path: Path) -> None:
    ckpt = save_checkpoint(biased_model(), tmp_path / "parent.pth")
    path = write_variant(derive_config(load_variant("small_cpu"), MODES), tmp_path / "derived.yaml")
    derived = load_model(str(path), ckpt)
    assert derived.cfg.division_modes == MODES
    # Only the fixed blocks' division keys may be missing from the model: anything else still fails.
    broken = GRM(replace(derived.cfg, head_channels=32))
    with pytest.raises(ValueError, match="does not fit"):
        load_state_dict_strict(broken, drop_skipped_division_keys(read_state_dict(ckpt), broken.cfg)[0], "x")


@torch.inference_mode()
def test_recorder_and_proposed_modes() -> None:
    model = biased_model()
    recorder = DivisionRecorder()
    with recorder.attach(model):
        model(*inputs(model, 3))
    model(*inputs(model, 1))  # detached: not recorded
    stats = {s["block"]: s for s in recorder.summary()}
    assert sorted(stats) == [1, 2, 3, 4, 5] and all(s["samples"] == 3 for s in stats.values())
    assert stats[1]["max"] == 0.0 and stats[4]["min"] == 1.0
    modes = propose_modes(model.cfg, recorder, tolerance=0.0)
    assert modes[:2] == ("two_stream", "two_stream") and modes[3] == "one_stream"
    assert propose_modes(model.cfg, recorder, tolerance=0.49).count("auto") == 0
    with pytest.raises(ValueError, match="tolerance"):
        propose_modes(model.cfg, recorder, tolerance=0.5)
    with pytest.raises(ValueError, match="no division decisions"):
        propose_modes(model.cfg, DivisionRecorder(), tolerance=0.0)


def tiny_sequence(root: Path, frames: int = 4) -> None:
    rng = np.random.default_rng(0)
    (root / "seq" / "img").mkdir(parents=True)
    lines = []
    for k in range(frames):
        image = rng.integers(0, 100, (120, 160, 3), dtype=np.uint8)
        image[40:64, 50 + 2 * k:74 + 2 * k] = (230, 60, 40)
        cv2.imwrite(str(root / "seq" / "img" / f"{k + 1:05d}.jpg"), image)
        lines.append(f"{50 + 2 * k},40,24,24")
    (root / "seq" / "groundtruth.txt").write_text("\n".join(lines) + "\n")


def test_calibrate_command_writes_a_loadable_variant_and_report(tmp_path: Path, capsys) -> None:
    tiny_sequence(tmp_path / "data")
    ckpt = save_checkpoint(biased_model(), tmp_path / "parent.pth")
    out = tmp_path / "cal" / "skip.yaml"
    assert calibrate_main(["--variant", "small_cpu", "--checkpoint", str(ckpt), "--root",
                           str(tmp_path / "data"), "--out", str(out), "--runs", "2", "--tolerance", "0"]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    modes = report["division_modes"]
    assert modes[:2] == ["two_stream", "two_stream"] and modes[3] == "one_stream"
    assert report["frames"] == 3 and len(report["layers"]) == 5
    comparison = report["comparison"]
    assert comparison["max_abs_map_diff"] < 1e-4
    assert comparison["box_iou_original_vs_derived"]["min"] > 0.999
    assert comparison["forward"]["derived"]["speedup_vs_original"] > 0
    assert load_model(str(out), ckpt).cfg.division_modes == tuple(modes)
    assert "division modes" in capsys.readouterr().out

