"""Variants are data: yaml files resolved by name or path, validated with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from grm_ros.model import GRMConfig, list_variants, load_variant


def test_builtin_variants() -> None:
    assert {"vitb_256", "vitb_256_got", "vitl_320", "small_cpu"} <= set(list_variants())
    vitb, vitl = load_variant("vitb_256"), load_variant("vitl_320")
    assert (vitb.embed_dim, vitb.depth, vitb.num_heads, vitb.search_feat) == (768, 12, 12, 16)
    assert (vitl.embed_dim, vitl.depth, vitl.num_heads) == (1024, 24, 16)
    assert (vitl.search_feat, vitl.search_factor) == (20, 5.0)
    assert (vitb.num_template_tokens, vitb.num_search_tokens, vitl.num_search_tokens) == (64, 256, 400)
    for name in list_variants():
        assert load_variant(name).name == name


def test_thresholds_per_benchmark() -> None:
    vitb = load_variant("vitb_256")
    assert vitb.threshold_for("lasot") == 0.4
    assert vitb.threshold_for("NfS") == 0.6
    assert vitb.threshold_for("uav") == 0.55
    assert vitb.threshold_for("avist") == 0.4
    assert vitb.threshold_for("got10k_test") == 0.0
    assert vitb.threshold_for("otb") == 0.0 and vitb.threshold_for(None) == 0.0
    assert load_variant("vitl_320").threshold_for("lasot") == 0.0  # argmax everywhere
    assert load_variant("vitb_256_got").threshold_for("lasot") == 0.0


def test_variant_from_path_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text("embed_dim: 64\ndepth: 2\nnum_heads: 2\nthresholds: {default: 0.3, lasot: 0.5}\n")
    cfg = load_variant(str(good))
    assert cfg.name == "mine" and cfg.threshold_for("LaSOT") == 0.5 and cfg.threshold_for("x") == 0.3
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nembed_dim: 64\ndepth: 2\nnum_heads: 2\nhead_size: 3\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*head_size"):
        load_variant(bad)
    with pytest.raises(ValueError, match="unknown GRM variant"):
        load_variant("vitz_999")
    with pytest.raises(ValueError, match="not divisible"):
        GRMConfig(name="x", embed_dim=100, depth=2, num_heads=3)
    with pytest.raises(ValueError, match="multiple of patch_size"):
        GRMConfig(name="x", embed_dim=64, depth=2, num_heads=2, search_size=100)
    with pytest.raises(ValueError, match="DEFAULT"):
        GRMConfig(name="x", embed_dim=64, depth=2, num_heads=2, thresholds={"LASOT": 0.4})
    with pytest.raises(ValueError, match="outside"):
        GRMConfig(name="x", embed_dim=64, depth=2, num_heads=2, thresholds={"DEFAULT": 2.0})


def test_config_round_trips_through_plain_dict() -> None:
    cfg = load_variant("vitb_256")
    again = GRMConfig(**cfg.to_dict())
    assert again == cfg and hash(again) == hash(cfg)
