"""Checkpoints load strictly and safely: trainer format with foreign objects, bare state_dicts, never code."""

from __future__ import annotations

import dataclasses
import os
import pickle
import sys
import types
from pathlib import Path

import pytest
import torch

import grm_ros.model.checkpoint as ckpt
from grm_ros.model import (
    GRM,
    GRMConfig,
    UnsafeCheckpointError,
    load_model,
    read_checkpoint,
    read_state_dict,
    save_checkpoint,
)
from grm_ros.model.checkpoint import Placeholder


class Settings:
    """Stands in for the authors' lib.train.admin.settings.Settings; a real unpickle leaves a marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)
        self.cfg = ConfigDict(lr=4e-4, epochs=[240, 300])
        self.history = History([1, 2, 3])

    def __setstate__(self, state: dict) -> None:
        Path(state["marker"]).touch()
        self.__dict__.update(state)


class ConfigDict(dict):
    """An EasyDict-like dict subclass (pickled with SETITEMS)."""


class History(list):
    """A list subclass (pickled with APPENDS)."""


class RunsCommand:
    def __init__(self, func: object, command: str) -> None:
        self.func, self.command = func, command

    def __reduce__(self) -> tuple:
        return (self.func, (self.command,))


def save_with_foreign_module(payload: dict, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pickle the foreign classes under the authors' module path, which does not exist at load time."""
    with monkeypatch.context() as patch:
        parts = ["lib", "train", "admin", "settings"]
        for i in range(1, len(parts) + 1):
            patch.setitem(sys.modules, ".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
        module = sys.modules["lib.train.admin.settings"]
        for cls in (Settings, ConfigDict, History):
            patch.setattr(cls, "__module__", module.__name__)
            setattr(module, cls.__name__, cls)
        torch.save(payload, path)


@pytest.fixture
def model(tiny_cfg: GRMConfig) -> GRM:
    torch.manual_seed(0)
    return GRM(tiny_cfg).eval()


def outputs(model: GRM, crops) -> dict:
    with torch.no_grad():
        return model(*crops(model.cfg, batch=2))


def test_save_and_load_round_trip(model: GRM, tmp_path: Path, crops) -> None:
    path = save_checkpoint(model, tmp_path / "run" / "GRM_ep0003.pth.tar", epoch=3,
                           extra={"stats": {"loss": 1.0}})
    raw = torch.load(path, weights_only=True)  # our own files need no unpickler tricks
    assert raw["epoch"] == 3 and raw["net_type"] == "GRM" and raw["grm_config"]["name"] == "tiny"
    assert set(raw["net"]) == set(model.state_dict())
    loaded = load_model(model.cfg, path)
    assert not loaded.training and loaded.attention == "fast"
    torch.testing.assert_close(outputs(loaded, crops)["score_map"], outputs(model, crops)["score_map"],
                               rtol=0, atol=0)
    with pytest.raises(ValueError, match="'net'"):
        save_checkpoint(model, tmp_path / "x.pth", extra={"net": {}})


def test_trainer_format_with_unknown_class_loads_without_running_code(
        model: GRM, tmp_path: Path, crops, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "settings_was_unpickled"
    path = tmp_path / "GRM_ep0300.pth.tar"
    optimizer = torch.optim.AdamW(model.parameters())
    payload = {"epoch": 300, "actor_type": "GRMActor", "net_type": "GRM", "net": model.state_dict(),
               "net_info": None, "optimizer": optimizer.state_dict(), "stats": None,
               "settings": Settings(marker), "device": torch.device("cpu")}
    save_with_foreign_module(payload, path, monkeypatch)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # so the restricted unpickler is what makes this work
    whole = read_checkpoint(path)
    assert not marker.exists()
    settings = whole["settings"]
    assert isinstance(settings, Placeholder) and type(settings).__name__ == "Settings"
    assert settings.state["cfg"].items == {"lr": 4e-4, "epochs": [240, 300]}
    assert settings.state["history"].listitems == [1, 2, 3]
    assert whole["epoch"] == 300 and whole["device"] == torch.device("cpu")
    loaded = load_model(model.cfg, path)
    torch.testing.assert_close(outputs(loaded, crops)["size_map"], outputs(model, crops)["size_map"])
    assert not marker.exists()


def test_checkpoint_of_another_attention_behaviour_is_refused(model: GRM, tmp_path: Path,
                                                              tiny_cfg: GRMConfig) -> None:
    """C.3 models have the plain variant's parameters, so only the saved grm_config tells them apart."""
    token = dataclasses.replace(tiny_cfg, attention_scaling="token")
    region = dataclasses.replace(tiny_cfg, attention_scaling="region", scaling_window=2)
    path = save_checkpoint(GRM(token), tmp_path / "c3.pth")
    with pytest.raises(ValueError, match="attention_scaling 'token' \\(variant 'none'\\)"):
        load_model(tiny_cfg, path)
    with pytest.raises(ValueError, match="attention_scaling 'token' \\(variant 'region'\\)"):
        load_model(region, path)
    assert load_model(token, path).cfg.attention_scaling == "token"
    plain = save_checkpoint(model, tmp_path / "plain.pth")
    with pytest.raises(ValueError, match="trained with attention_scaling 'none'"):
        load_model(token, plain)
    wider = save_checkpoint(GRM(region), tmp_path / "region2.pth")
    with pytest.raises(ValueError, match="scaling_window 2 \\(variant 4\\)"):
        load_model(dataclasses.replace(region, scaling_window=4), wider)
    bare = tmp_path / "bare.pth"  # no grm_config: nothing to check against
    torch.save(GRM(token).state_dict(), bare)
    load_model(tiny_cfg, bare)


def test_bare_state_dict_loads(model: GRM, tmp_path: Path) -> None:
    path = tmp_path / "bare.pth"
    torch.save(model.state_dict(), path)
    state = read_state_dict(path)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("func", [os.system, eval, exec])
def test_file_that_runs_code_is_refused(model: GRM, tmp_path: Path, func) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    command = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w').close()"
    torch.save({"net": model.state_dict(), "settings": RunsCommand(func, command)}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.pth.*refusing"):
        read_state_dict(path)
    with pytest.raises(UnsafeCheckpointError):
        load_model(model.cfg, path)
    assert not marker.exists()


def test_plain_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "legacy.pth"
    path.write_bytes(pickle.dumps(RunsCommand(os.system, f"touch {marker}"), protocol=2))
    with pytest.raises(UnsafeCheckpointError, match="refusing"):
        read_state_dict(path)
    assert not marker.exists()


def test_reduce_of_unknown_callable_stays_inert(model: GRM, tmp_path: Path, monkeypatch) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "sneaky.pth"

    def make_marker(target: str) -> None:
        Path(target).touch()

    payload = {"net": model.state_dict(), "hook": RunsCommand(make_marker, str(marker))}
    with monkeypatch.context() as patch:
        helpers = types.ModuleType("trainer_helpers")
        helpers.make_marker = make_marker
        patch.setattr(make_marker, "__module__", "trainer_helpers")
        patch.setattr(make_marker, "__qualname__", "make_marker")
        patch.setitem(sys.modules, "trainer_helpers", helpers)
        torch.save(payload, path)
    whole = read_checkpoint(path)
    assert isinstance(whole["hook"], Placeholder) and whole["hook"].args == (str(marker),)
    assert not marker.exists()


def test_strict_loading_names_variant_and_file(model: GRM, tmp_path: Path, tiny_cfg: GRMConfig) -> None:
    state = model.state_dict()
    state.pop("box_head.conv5_ctr.bias")
    state["backbone.extra"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save({"net": state}, path)
    with pytest.raises(ValueError) as err:
        load_model(tiny_cfg, path)
    message = str(err.value)
    assert "broken.pth" in message and "'tiny'" in message
    assert "missing keys (1): box_head.conv5_ctr.bias" in message
    assert "unexpected keys (1): backbone.extra" in message
    wider = GRMConfig(name="wider", embed_dim=96, depth=3, num_heads=2, template_size=32, search_size=64,
                      head_channels=32, division_hidden=(32, 16), pretrain_grid=4)
    good = save_checkpoint(model, tmp_path / "good.pth")
    expected = r"'wider'.*shape mismatches \(\d+\): .*proj\.bias file \(64,\) vs model \(96,\)"
    with pytest.raises(ValueError, match=expected):
        load_model(wider, good)


def test_packaged_weights_come_from_the_variant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                tiny_cfg: GRMConfig) -> None:
    monkeypatch.setattr(ckpt, "WEIGHTS_DIR", tmp_path)
    packaged = dataclasses.replace(tiny_cfg, weights="tiny.pth")
    assert ckpt.packaged_checkpoint(packaged) == tmp_path / "tiny.pth"
    with pytest.raises(FileNotFoundError, match=r"tiny\.pth"):  # named in the yaml, missing on disk
        load_model(packaged)
    assert isinstance(load_model(packaged, allow_random=True), GRM)
    save_checkpoint(GRM(packaged), tmp_path / "tiny.pth")
    assert isinstance(load_model(packaged), GRM)  # found without a checkpoint argument
    # A variant that names no weights never falls back to another's.
    assert ckpt.packaged_checkpoint(tiny_cfg) is None and ckpt.packaged_checkpoint("no_such_variant") is None
    with pytest.raises(FileNotFoundError, match="ships no packaged model"):
        load_model(tiny_cfg)
    assert isinstance(load_model(tiny_cfg, allow_random=True), GRM)
    with pytest.raises(FileNotFoundError):
        load_model(tiny_cfg, tmp_path / "also_absent.pth", allow_random=True)
    with pytest.raises(ValueError, match="weights must be a file name"):
        dataclasses.replace(tiny_cfg, weights="../elsewhere.pth")


def test_builtin_variants_name_their_packaged_weights() -> None:
    assert ckpt.packaged_checkpoint(ckpt.DEFAULT_VARIANT) == ckpt.DEFAULT_CHECKPOINT
    assert ckpt.DEFAULT_CHECKPOINT.name == "nanostem_256.pth"
    assert ckpt.packaged_checkpoint("small_cpu").is_file()  # the first default model stays loadable
    assert ckpt.packaged_checkpoint("vitb_256") is None


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "text.pth"
    path.write_text("hello")
    with pytest.raises(ValueError, match=r"text\.pth"):
        read_state_dict(path)
    listy = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listy)
    with pytest.raises(ValueError, match="no state_dict"):
        read_state_dict(listy)
