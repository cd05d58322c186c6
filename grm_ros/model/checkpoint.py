"""Reading and writing GRM checkpoints without ever running code from the file.

The authors' trainer saves ``{'net': state_dict, 'epoch', 'net_type', 'optimizer', 'stats', 'settings'}``,
where ``settings`` is a pickled object of a class that does not exist here. Files are first read with
``torch.load(weights_only=True)``; if that refuses an unknown global, they are read again with a restricted
unpickler that returns real objects only for tensors and plain containers, turns every other class into an
inert placeholder, and refuses globals from modules that exist to run code (``os.system``, ``eval`` ...).
Nothing is ever imported on the file's behalf.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from grm_ros.model.config import GRMConfig, load_variant
from grm_ros.model.grm import GRM
from grm_ros.model.skipping import drop_skipped_division_keys

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_VARIANT = "nanostem_256"
STATE_DICT_KEYS = ("net", "model", "state_dict")  # trainer format, MAE/DeiT release, generic


def packaged_checkpoint(variant: str | GRMConfig) -> Path | None:
    """Where the package's own weights for ``variant`` live, from its yaml's ``weights`` (None: it ships
    none). The file may be missing from a source checkout; ``weights_file`` checks."""
    if isinstance(variant, str):
        try:
            variant = load_variant(variant)
        except ValueError:
            return None
    return WEIGHTS_DIR / variant.weights if variant.weights else None


def weights_file(variant: str | GRMConfig, checkpoint: str | Path | None = None) -> Path | None:
    """The file ``load_model`` reads: ``checkpoint`` if given, else the variant's packaged weights where
    the file exists; None means RANDOM weights. The one place that decides "packaged model or random";
    ``load_model``, the node, the demo and the command lines all ask it."""
    if checkpoint is not None:
        return Path(checkpoint)
    packaged = packaged_checkpoint(variant)
    return packaged if packaged is not None and packaged.is_file() else None


DEFAULT_CHECKPOINT = packaged_checkpoint(DEFAULT_VARIANT)

_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "slice"): slice,
}
# Modules whose globals only appear in a checkpoint to run something: refuse the whole file.
_REFUSED_MODULES = frozenset({
    "builtins", "__builtin__", "os", "posix", "nt", "subprocess", "sys", "shutil", "importlib", "runpy",
    "socket", "pty", "code", "codeop", "pickle", "_pickle", "marshal", "ctypes", "webbrowser", "pdb",
    "timeit", "commands", "popen2", "_posixsubprocess", "multiprocessing", "asyncio", "platform",
})


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The file names a global that can run code; it was not unpickled."""


class Placeholder:
    """Inert stand-in for an object of a class that is not (and must not be) imported.

    Construction, state, items and list items are recorded, never interpreted, so a pickled REDUCE of a
    placeholder runs nothing.
    """

    __slots__ = ("args", "items", "listitems", "state")

    def __new__(cls, *args: Any, **kwargs: Any) -> Placeholder:
        obj = super().__new__(cls)
        obj.args, obj.items, obj.listitems, obj.state = args, {}, [], None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Arguments were recorded by __new__."""

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.listitems.append(value)

    def extend(self, values: Any) -> None:
        self.listitems.extend(values)

    def __repr__(self) -> str:
        return f"<placeholder for {type(self).__module__}.{type(self).__qualname__}>"


def _torch_dtype(module: str, name: str) -> torch.dtype | None:
    value = getattr(torch, name, None) if module == "torch" else None
    return value if isinstance(value, torch.dtype) else None


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler admitting tensors and plain containers; see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._placeholders: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[key]
        dtype = _torch_dtype(module, name)
        if dtype is not None:
            return dtype
        if module.split(".")[0] in _REFUSED_MODULES:
            raise UnsafeCheckpointError(f"refusing {module}.{name}: a checkpoint has no business naming it, "
                                        "and unpickling it could run code")
        if key not in self._placeholders:
            self._placeholders[key] = type(name, (Placeholder,), {"__module__": module, "__slots__": ()})
        return self._placeholders[key]


class RestrictedPickle:
    """The ``pickle_module`` handed to ``torch.load``: ``Unpickler``, and ``load`` for legacy files."""

    __name__ = "grm_ros_restricted_pickle"
    Unpickler = RestrictedUnpickler

    @staticmethod
    def load(file: Any, **kwargs: Any) -> Any:
        return RestrictedUnpickler(file, **kwargs).load()


def read_checkpoint(path: str | Path) -> Any:
    """The whole checkpoint object, loaded without running code from it (unknown classes -> Placeholder)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # an unknown global (e.g. the trainer's settings object): retry restricted
    except Exception as err:  # torch raises assorted types for files that are not checkpoints
        raise ValueError(f"{path}: not a readable torch checkpoint: {err!r}") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=RestrictedPickle)
    except UnsafeCheckpointError as err:
        raise UnsafeCheckpointError(f"{path}: {err}") from None
    except Exception as err:
        raise ValueError(f"{path}: not a readable torch checkpoint: {err!r}") from None


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The state_dict in a trainer-format file (under 'net'), an MAE/DeiT release ('model') or a bare one."""
    return state_dict_of(read_checkpoint(path), path)


def check_saved_behaviour(obj: Any, cfg: GRMConfig, path: str | Path) -> None:
    """Raise if a trainer-format checkpoint's ``grm_config`` trained another attention behaviour than
    ``cfg`` (a C.3 model under the plain variant, or the other way round); files without one pass."""
    saved = obj.get("grm_config") if isinstance(obj, dict) else None
    if not isinstance(saved, dict):
        return
    # The fields that change what the same parameters compute: the scaling, and the window where it is
    # pooled over regions. Loaded under other values, the weights would run, silently, as another model.
    ours = cfg.to_dict()
    fields = ("attention_scaling", "scaling_window") if ours["attention_scaling"] == "region" else (
        "attention_scaling",)
    differ = [f"{k} {saved[k]!r} (variant {ours[k]!r})" for k in fields if k in saved and saved[k] != ours[k]]
    if differ:
        raise ValueError(f"checkpoint {path} was trained with {', '.join(differ)}: load it with the variant "
                         f"it was trained as (saved name {saved.get('name')!r})")


def state_dict_of(obj: Any, path: str | Path) -> dict[str, Tensor]:
    """The state_dict inside a loaded checkpoint object (see ``read_state_dict``)."""
    if isinstance(obj, dict):
        for key in STATE_DICT_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"{path}: no state_dict found (expected a dict with one of {STATE_DICT_KEYS} "
                         "or a bare dict of tensors)")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f"{path}: state_dict entries that are not named tensors: {bad[:5]}")
    return dict(obj)


def _describe(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > limit else shown


def load_state_dict_strict(model: GRM, state_dict: dict[str, Tensor], source: str) -> None:
    """Load every key or fail once, listing missing, unexpected and mis-shaped entries."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(
        f"{k} file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    )
    problems = [
        f"{label} ({len(items)}): {_describe(items)}"
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                             ("shape mismatches", mismatched))
        if items
    ]
    if problems:
        raise ValueError(f"checkpoint {source} does not fit GRM variant {model.cfg.name!r}: "
                         + "; ".join(problems))
    model.load_state_dict(state_dict, strict=True)


def load_model(cfg_or_variant: GRMConfig | str, checkpoint: str | Path | None = None,
               device: str | torch.device = "cpu", attention: str = "fast",
               allow_random: bool = False) -> GRM:
    """A GRM in eval mode with strictly loaded weights.

    ``checkpoint=None`` means the variant's packaged weights (``weights_file``); if it ships none or the
    file is missing, ``allow_random=True`` builds random weights (with a warning) instead of raising
    ``FileNotFoundError``.
    """
    cfg = cfg_or_variant if isinstance(cfg_or_variant, GRMConfig) else load_variant(cfg_or_variant)
    model = GRM(cfg, attention=attention)
    path = weights_file(cfg, checkpoint)
    if path is None:
        path = packaged_checkpoint(cfg)  # named in the errors below
    if path is not None and path.is_file():
        # A derived variant (division skipping) loads its parent's checkpoint: the fixed blocks' division
        # MLP keys are the only ones it may ignore.
        obj = read_checkpoint(path)
        check_saved_behaviour(obj, cfg, path)
        state, dropped = drop_skipped_division_keys(state_dict_of(obj, path), cfg)
        if dropped:
            log.info("%s: ignoring %d division-MLP entries of the blocks variant %r fixes", path,
                     len(dropped), cfg.name)
        load_state_dict_strict(model, state, str(path))
    elif checkpoint is None and allow_random:
        log.warning("no checkpoint for GRM %r (%s): RANDOM weights", cfg.name, path or "no default")
    elif path is not None and path.is_dir():
        raise IsADirectoryError(f"checkpoint {path} is a folder; name the .pth or .pth.tar file in it")
    elif path is None:
        raise FileNotFoundError(f"no checkpoint given for GRM variant {cfg.name!r}, which ships no packaged "
                                f"model (the default variant {DEFAULT_VARIANT!r} does)")
    else:
        raise FileNotFoundError(f"checkpoint for GRM variant {cfg.name!r} not found: {path}")
    return model.to(device).eval()


def save_checkpoint(model: torch.nn.Module, path: str | Path, epoch: int = 0,
                    extra: dict | None = None) -> Path:
    """Write the authors' trainer format, so our checkpoints load like the released ones.

    The variant travels along as plain data (``grm_config``); ``extra`` (optimizer state, stats...) may
    not override ``net``. The file is written atomically.
    """
    net = getattr(model, "module", model)  # unwrap DistributedDataParallel
    if not isinstance(net, GRM):
        raise ValueError(f"save_checkpoint expects a GRM (or a wrapper of one), got {type(net).__name__}")
    extra = dict(extra or {})
    if "net" in extra:
        raise ValueError("save_checkpoint: extra must not contain 'net'")
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    payload = {"net": state, "epoch": int(epoch), "net_type": type(net).__name__,
               "grm_config": net.cfg.to_dict(), **extra}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path
