"""The state_dict matches the authors' checkpoints key for key, so released files load strictly."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from grm_ros.model import GRM, load_variant


def read_key_list(path: Path) -> dict[str, tuple[tuple[int, ...], str, str]]:
    entries = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape, dtype, kind = line.split("\t")
        dims = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
        entries[key] = (dims, dtype, kind)
    return entries


@pytest.mark.parametrize(("variant", "key_file"), [("vitb_256", "keys_vitb256.txt"),
                                                   ("vitb_256_got", "keys_vitb256.txt"),
                                                   ("vitl_320", "keys_vitl320.txt")])
def test_state_dict_matches_released_keys(variant: str, key_file: str,
                                          shared_data: Callable[..., Path]) -> None:
    expected = read_key_list(shared_data("grm", key_file))
    with torch.device("meta"):
        model = GRM(load_variant(variant))
    state = model.state_dict()
    assert list(state) == list(expected)  # same keys, same order as the authors' state_dict
    for key, (shape, dtype, _) in expected.items():
        assert tuple(state[key].shape) == shape, key
        assert str(state[key].dtype).removeprefix("torch.") == dtype, key
    params = {name for name, _ in model.named_parameters()}
    assert params == {k for k, (_, _, kind) in expected.items() if kind == "param"}
    assert sum(p.numel() for p in model.parameters()) == sum(
        torch.Size(s).numel() for s, _, kind in expected.values() if kind == "param")


def test_model_package_imports_without_rclpy() -> None:
    code = "import sys, grm_ros.model; assert 'rclpy' not in sys.modules, 'rclpy was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
