"""The tracker between frames and the GRM network: targets, crops, one batched forward, decode, states.

No ROS here: the node, the evaluation and the benchmarks all drive this class with plain arrays and get
plain ``TrackResult`` values back. The network runs in an ``InferenceEngine``, which owns its device,
dtype, threads and backend; the tracker only reads the engine's maps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType

import numpy as np
import torch

from grm_ros.boxes import check_box
from grm_ros.model import DEFAULT_VARIANT, GRM, GRMConfig, load_model
from grm_ros.model.config import TRACKER_CALIBRATION
from grm_ros.model.engine import EngineConfig, HeadMaps, InferenceEngine, resolve_device, resolve_dtype
from grm_ros.tracking.geometry import (
    check_frame_size,
    clip_box,
    crop_batch_torch,
    crop_size,
    decode_maps,
    hann_window,
    map_box_back,
    normalize_image,
    sample_target,
    scale_change_penalty,
    size_map_penalty,
    smooth_size,
)
from grm_ros.tracking.state import ConfidenceHysteresis, HysteresisConfig, TrackState
from grm_ros.tracking.template_update import TemplateAction, TemplateUpdateConfig, TemplateUpdatePolicy

GEOMETRIES = ("device", "reference")
COLOR_ORDERS = ("rgb", "bgr")


# The calibrated settings' values for a variant that does not calibrate them (GRMConfig.tracker_defaults).
TRACKER_FALLBACK = MappingProxyType(dict(zip(TRACKER_CALIBRATION, (0.25, 0.45, 1.5), strict=True)))


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


@dataclass
class TrackerConfig:
    """Tracker settings; crop factors and sizes come from the model's variant.

    geometry: "device" (torch crops on the model's device, the default: on CUDA it avoids host work, and
    ``make bench`` measured it no slower than cv2 on 2 CPU cores either) or "reference" (the authors'
    numpy/cv2 crops on the CPU). color_order: channel order of incoming frames.
    benchmark / division_threshold: the division threshold tau is ``division_threshold`` if given, else the
    variant's value for ``benchmark`` (DEFAULT when None); the engine bakes it in, so ``tracker_for``
    builds the engine with it and ``Tracker`` refuses an engine built for another. lost_threshold ...
    recover_after: see
    ``HysteresisConfig``.
    lost_search_scale: a LOST target's search factor is multiplied by this (>= 1) to look further.
    lost_threshold, recover_threshold and lost_search_scale left at None take the network's calibrated
    values (``GRMConfig.tracker_defaults``), else ``TRACKER_FALLBACK``; ``for_network`` fills them in.
    template_update: ``TemplateUpdateConfig`` (or a mapping of its fields); off by default.
    scale_penalty: k of ``scale_change_penalty``, which weighs down score-map peaks whose size jumps from
    the previous box's (0 = off, the authors' loop). size_lr: how far the size follows one frame's estimate,
    scaled by that frame's confidence and penalty (1 = all the way, the authors' loop); the centre always
    follows. Both are the SiamRPN family's loop (NanoTrack uses about 0.15 and 0.35) and apply to every
    variant alike; ``paper()`` turns them off.
    """

    geometry: str = "device"
    color_order: str = "rgb"
    benchmark: str | None = None
    division_threshold: float | None = None
    lost_threshold: float | None = None
    recover_threshold: float | None = None
    lost_after: int = 5
    recover_after: int = 2
    lost_search_scale: float | None = None
    template_update: TemplateUpdateConfig = field(default_factory=TemplateUpdateConfig)
    scale_penalty: float = 0.15
    size_lr: float = 0.35

    def __post_init__(self) -> None:
        if self.geometry not in GEOMETRIES:
            raise ValueError(f"TrackerConfig.geometry must be one of {GEOMETRIES}, got {self.geometry!r}")
        if self.color_order not in COLOR_ORDERS:
            raise ValueError(f"TrackerConfig.color_order must be one of {COLOR_ORDERS}, "
                             f"got {self.color_order!r}")
        tau = self.division_threshold
        if tau is not None and not 0.0 <= tau <= 1.0:
            raise ValueError(f"TrackerConfig.division_threshold must be in [0, 1] or None, got {tau!r}")
        if not (math.isfinite(self.scale_penalty) and 0.0 <= self.scale_penalty <= 10.0):
            raise ValueError(f"TrackerConfig.scale_penalty must be in [0, 10], got {self.scale_penalty!r}")
        if not (math.isfinite(self.size_lr) and 0.0 < self.size_lr <= 1.0):
            raise ValueError(f"TrackerConfig.size_lr must be in (0, 1], got {self.size_lr!r}")
        scale = self.lost_search_scale
        if scale is not None and not (math.isfinite(scale) and scale >= 1.0):
            raise ValueError(f"TrackerConfig.lost_search_scale must be >= 1, got {scale!r}")
        if isinstance(self.template_update, Mapping):
            known = {f.name for f in fields(TemplateUpdateConfig)}
            unknown = sorted(set(self.template_update) - known)
            if unknown:
                raise ValueError(f"TrackerConfig.template_update: unknown field(s) {unknown}; "
                                 f"known: {sorted(known)}")
            self.template_update = TemplateUpdateConfig(**self.template_update)
        # Validate what is set now rather than at the first start(); an unset threshold stands in as the
        # bound that cannot conflict (0 for lost, 1 for recover) until ``for_network`` fills it in.
        HysteresisConfig(_or(self.lost_threshold, 0.0), _or(self.recover_threshold, 1.0), self.lost_after,
                         self.recover_after)

    def hysteresis(self) -> HysteresisConfig:
        """The state thresholds of a config resolved by ``for_network``."""
        if self.lost_threshold is None or self.recover_threshold is None:
            raise ValueError("TrackerConfig.hysteresis() needs for_network() first: thresholds are unset")
        return HysteresisConfig(self.lost_threshold, self.recover_threshold, self.lost_after,
                                self.recover_after)

    def threshold_for(self, net: GRMConfig) -> float:
        """The division threshold tau this config asks of ``net``."""
        tau = self.division_threshold
        return tau if tau is not None else net.threshold_for(self.benchmark)

    def for_network(self, net: GRMConfig) -> TrackerConfig:
        """A copy whose unset calibration fields hold ``net``'s values (else the fallback); validated."""
        unset = {k: net.tracker_defaults.get(k, fallback) for k, fallback in TRACKER_FALLBACK.items()
                 if getattr(self, k) is None}
        try:
            resolved = replace(self, **unset)
        except ValueError as err:
            raise ValueError(f"{err} (with GRM {net.name}'s calibrated {sorted(unset)})") from None
        if resolved.template_update.min_confidence is None:  # a healthy track's confidence for this network
            resolved.template_update = replace(resolved.template_update,
                                               min_confidence=resolved.recover_threshold)
        return resolved

    @classmethod
    def paper(cls, benchmark: str | None = None) -> TrackerConfig:
        """The authors' tracker: reference crops, fixed search region, first-frame template only, the box
        read at the windowed peak as it is."""
        return cls(geometry="reference", benchmark=benchmark, lost_search_scale=1.0, scale_penalty=0.0,
                   size_lr=1.0)


@dataclass(frozen=True)
class TrackResult:
    """One target after one frame. A LOST box is the tracker's best guess, not a lock."""

    target_id: int
    box: tuple[float, float, float, float]  # x, y, w, h in pixels
    confidence: float  # peak of the raw score map, 0..1
    state: TrackState
    age: int  # frames tracked since start (0 at start)
    label: str
    reason: str = ""  # why ``update`` stopped this target (state STOPPED); empty otherwise


@dataclass
class Target:
    """Per-target state; templates are normalised (1, 3, T, T) tensors on the model's device and dtype.

    ``template`` is the one the forward uses (the anchor, or a refresh in "replace" mode); ``dynamic`` is
    the second template of "dual" mode, run beside it, or None.
    """

    target_id: int
    label: str
    box: np.ndarray
    template: torch.Tensor
    anchor: torch.Tensor
    hysteresis: ConfidenceHysteresis
    policy: TemplateUpdatePolicy
    frame_hw: tuple[int, int]  # size of the frame the box refers to
    age: int = 0
    confidence: float = 1.0
    dynamic: torch.Tensor | None = None

    @property
    def state(self) -> TrackState:
        return self.hysteresis.state


class Tracker:
    """Tracks any number of targets with one GRM forward per frame.

    Frames are HxWx3 uint8 numpy arrays or 3xHxW tensors (uint8, or float in 0..255), in the channel order
    given by ``config.color_order``. Boxes are (x, y, w, h) in pixels. Crops are made on the engine's
    device in its dtype.
    """

    def __init__(self, engine: InferenceEngine, config: TrackerConfig | None = None) -> None:
        self.config = (config or TrackerConfig()).for_network(engine.cfg)
        self.engine, self.net_cfg = engine, engine.cfg
        self.device, self.dtype, self.threshold = engine.device, engine.dtype, engine.threshold
        asked = self.config.threshold_for(self.net_cfg)
        if asked != engine.threshold:
            raise ValueError(f"the engine runs division threshold {engine.threshold:g}, the tracker config "
                             f"asks {asked:g}: build the engine with the config's (tracker_for does)")
        self.window = hann_window(self.net_cfg.search_feat).to(self.device)
        self._targets: dict[int, Target] = {}
        self._next_id = 1

    @property
    def targets(self) -> dict[int, Target]:
        return dict(self._targets)

    # ----------------------------------------------------------------------------------------- frames
    def _prepare(self, frame: np.ndarray | torch.Tensor) -> tuple[np.ndarray | torch.Tensor, int, int]:
        """RGB frame in the form the configured geometry crops from: HWC uint8 numpy or CHW device tensor."""
        bgr = self.config.color_order == "bgr"
        if isinstance(frame, torch.Tensor):
            if frame.dim() != 3 or frame.shape[0] != 3 or frame.shape[1] < 1 or frame.shape[2] < 1:
                raise ValueError(f"frame tensor must be 3xHxW, got {tuple(frame.shape)}")
            image = frame.flip(0) if bgr else frame
            if self.config.geometry == "reference":
                image = image.detach().permute(1, 2, 0).round().clamp(0, 255).to("cpu", torch.uint8).numpy()
            else:
                image = image.to(self.device)
        elif isinstance(frame, np.ndarray):
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or 0 in frame.shape:
                raise ValueError(f"frame array must be HxWx3 uint8, got shape {frame.shape} "
                                 f"dtype {frame.dtype}")
            if self.config.geometry == "device":  # upload once, reorder channels on the device
                # torch cannot wrap a read-only buffer (a zero-copy view of a ROS message): copy it once.
                host = np.ascontiguousarray(frame) if frame.flags.writeable else frame.copy()
                image = self._upload(torch.from_numpy(host)).permute(2, 0, 1)
                image = image.flip(0) if bgr else image
            else:
                image = np.ascontiguousarray(frame[..., ::-1]) if bgr else frame
        else:
            raise ValueError(f"frame must be a numpy array or a torch tensor, got {type(frame).__name__}")
        height, width = frame.shape[:2] if isinstance(frame, np.ndarray) else frame.shape[1:]
        check_frame_size(int(height), int(width))
        return image, int(height), int(width)

    def _upload(self, host: torch.Tensor) -> torch.Tensor:
        """Host tensor -> device. On CUDA through pinned memory, so the copy does not block the host; torch's
        caching host allocator keeps a pinned block alive until the copies reading it have finished."""
        if self.device.type != "cuda":
            return host
        return host.pin_memory().to(self.device, non_blocking=True)

    def _crops(self, image: np.ndarray | torch.Tensor, boxes: np.ndarray, factors: np.ndarray,
               out_size: int) -> tuple[torch.Tensor, np.ndarray]:
        """Normalised crops (K, 3, S, S) in the model's dtype and resize factors computed on the host."""
        resize = np.array([out_size / crop_size(b[2:], f) for b, f in zip(boxes, factors, strict=True)])
        if self.config.geometry == "reference":
            crops = [normalize_image(sample_target(image, b, f, out_size)[0]) for b, f in zip(boxes, factors,
                                                                                            strict=True)]
            batch = self._upload(torch.from_numpy(np.stack(crops))).permute(0, 3, 1, 2)
        else:
            batch, _ = crop_batch_torch(image, torch.from_numpy(boxes), torch.from_numpy(factors), out_size)
        return batch.to(self.dtype), resize

    def _templates(self, image: np.ndarray | torch.Tensor, boxes: np.ndarray) -> torch.Tensor:
        factors = np.full(len(boxes), self.net_cfg.template_factor)
        return self._crops(image, boxes, factors, self.net_cfg.template_size)[0]

    # ----------------------------------------------------------------------------------------- targets
    def _new_target(self, target_id: int, label: str, image: np.ndarray | torch.Tensor, box: np.ndarray,
                    frame_hw: tuple[int, int]) -> Target:
        template = self._templates(image, box[None])
        return Target(target_id, label, box, template, template,
                      ConfidenceHysteresis(self.config.hysteresis()),
                      TemplateUpdatePolicy(self.config.template_update), frame_hw)

    def start(self, frame: np.ndarray | torch.Tensor, box_xywh: Sequence[float], target_id: int | None = None,
              label: str = "") -> int:
        """Start a target from its box in ``frame``; returns its id (new unless ``target_id`` is given)."""
        image, height, width = self._prepare(frame)
        box = check_box(box_xywh, (height, width), "start box")
        if target_id is None:
            target_id = self._next_id
        elif target_id in self._targets:
            raise ValueError(f"target id {target_id} is already tracked; stop it or use reacquire()")
        self._next_id = max(self._next_id, target_id + 1)
        self._targets[target_id] = self._new_target(target_id, label, image, box, (height, width))
        return target_id

    def reacquire(self, target_id: int, frame: np.ndarray | torch.Tensor, box_xywh: Sequence[float]) -> None:
        """Re-initialise a target (typically LOST) from a new box, keeping its id and label."""
        if target_id not in self._targets:
            raise ValueError(f"cannot reacquire target {target_id}: not tracked "
                             f"(active ids {sorted(self._targets)})")
        image, height, width = self._prepare(frame)
        box = check_box(box_xywh, (height, width), "start box")
        label = self._targets[target_id].label
        self._targets[target_id] = self._new_target(target_id, label, image, box, (height, width))

    def stop(self, target_id: int) -> bool:
        target = self._targets.pop(target_id, None)
        if target is None:
            return False
        target.hysteresis.stop()
        return True

    def stop_all(self) -> int:
        count = 0
        for target_id in list(self._targets):
            count += self.stop(target_id)
        return count

    # ----------------------------------------------------------------------------------------- tracking
    def _step(self, image: np.ndarray | torch.Tensor, targets: list[Target], height: int,
              width: int) -> tuple[np.ndarray, np.ndarray]:
        """New boxes (K x 4, clipped to the frame) and confidences (K) of ``targets``: one batched forward."""
        # A resized stream: search from where each box still lies inside the new frame.
        boxes = np.stack([t.box if t.frame_hw == (height, width) else clip_box(t.box, height, width)
                          for t in targets])
        cfg, net = self.config, self.net_cfg
        factors = np.array([self.search_factor(t.state) for t in targets])
        search, resize = self._crops(image, boxes, factors, net.search_size)
        maps = self._maps(targets, search)
        prior_wh = torch.from_numpy(boxes[:, 2:] * resize[:, None] / net.search_size)  # in crop units
        penalty = size_map_penalty(maps.size, prior_wh, cfg.scale_penalty) if cfg.scale_penalty else None
        pred, confidence = decode_maps(maps.score, maps.size, maps.offset, self.window, penalty)
        decoded = torch.cat([pred, confidence[:, None]], dim=1).cpu().double().numpy()  # the one device sync
        mapped = map_box_back(decoded[:, :4] * net.search_size, boxes, net.search_size, resize)
        if cfg.size_lr < 1.0:
            chosen = scale_change_penalty(torch.from_numpy(decoded[:, 2:4]), prior_wh, cfg.scale_penalty)
            mapped = smooth_size(mapped, boxes, cfg.size_lr * chosen.numpy() * decoded[:, 4])
        return clip_box(mapped, height, width), decoded[:, 4]

    def search_factor(self, state: TrackState) -> float:
        """The search crop's factor for a target in ``state``: a LOST target looks further."""
        scale = self.config.lost_search_scale if state is TrackState.LOST else 1.0
        return self.net_cfg.search_factor * scale

    def _maps(self, targets: list[Target], search: torch.Tensor) -> HeadMaps:
        """One forward for every target; a target with a dynamic template also runs it on its own search
        crop in the same batch, and its maps are the mean of its two templates' maps."""
        dual = [k for k, t in enumerate(targets) if t.dynamic is not None]
        templates = [t.template for t in targets] + [targets[k].dynamic for k in dual]
        maps = self.engine.maps(torch.cat(templates), torch.cat((search, search[dual])) if dual else search)
        if not dual:
            return maps
        count, rows = len(targets), torch.tensor(dual, device=search.device)
        fused = maps.slice(count).clone()
        for mine, full in zip(fused, maps, strict=True):
            mine[rows] = (mine[rows] + full[count:]) / 2
        return fused

    def _isolated_step(self, image: np.ndarray | torch.Tensor, targets: list[Target], height: int,
                       width: int) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        """``_step``, plus why each failed target failed (by id), so that one bad target cannot stop the rest.

        If the batch raises, every target is stepped alone (only then: the healthy path stays one forward),
        and those that raise on their own fail; so does any target whose box or confidence is not finite.
        """
        failures: dict[int, str] = {}
        try:
            boxes, confidences = self._step(image, targets, height, width)
        except Exception:  # which target caused it is found below, one at a time
            boxes, confidences = np.full((len(targets), 4), np.nan), np.full(len(targets), np.nan)
            for k, target in enumerate(targets):
                try:
                    (boxes[k],), (confidences[k],) = self._step(image, [target], height, width)
                except Exception as err:  # reported in the target's result
                    failures[target.target_id] = f"step failed: {type(err).__name__}: {err}"
        for k, target in enumerate(targets):
            if target.target_id not in failures and not np.isfinite([*boxes[k], confidences[k]]).all():
                failures[target.target_id] = (f"state turned non-finite (box {boxes[k].tolist()}, "
                                              f"confidence {confidences[k]})")
        return boxes, confidences, failures

    def _fail(self, target: Target, reason: str) -> TrackResult:
        """Stop ``target`` for ``reason``; its result keeps the last box that was finite."""
        self.stop(target.target_id)
        return TrackResult(target.target_id, tuple(float(v) for v in target.box), 0.0, TrackState.STOPPED,
                           target.age, target.label, reason)

    @torch.inference_mode()
    def update(self, frame: np.ndarray | torch.Tensor) -> list[TrackResult]:
        """Track every target into ``frame`` with one batched forward; results in target-id order.

        A target whose step raises or whose new state is not finite is stopped: its last result has state
        STOPPED, its last good box, confidence 0 and the reason, and the other targets are unaffected.
        """
        image, height, width = self._prepare(frame)
        if not self._targets:
            return []
        targets = [self._targets[i] for i in sorted(self._targets)]
        new_boxes, confidences, failures = self._isolated_step(image, targets, height, width)

        results, refresh = [], []
        for k, target in enumerate(targets):
            if target.target_id in failures:
                results.append(self._fail(target, failures[target.target_id]))
                continue
            target.box, target.confidence = new_boxes[k], float(confidences[k])
            target.frame_hw = (height, width)
            target.age += 1
            state = target.hysteresis.update(target.confidence)
            action = target.policy.step(target.confidence, target.box, lost=state is TrackState.LOST)
            if action is TemplateAction.REFRESH:
                refresh.append(target)
            elif action is TemplateAction.REVERT:
                target.template, target.dynamic = target.anchor, None
            box = tuple(float(v) for v in target.box)
            results.append(TrackResult(target.target_id, box, target.confidence, state, target.age,
                                       target.label))
        if refresh:
            templates = self._templates(image, np.stack([t.box for t in refresh]))
            dual = self.config.template_update.mode == "dual"
            for target, template in zip(refresh, templates, strict=True):
                if dual:
                    target.dynamic = template[None]
                else:
                    target.template = template[None]
        return results


def tracker_for(model: GRM, config: TrackerConfig | None = None,
                engine: EngineConfig | None = None) -> Tracker:
    """A ``Tracker`` on an engine built for ``model`` with the config's division threshold. ``engine``
    defaults to the eager ``torch`` backend on the CPU, where hooks on the model see every forward."""
    config = config or TrackerConfig()
    built = InferenceEngine(model, engine or EngineConfig(backend="torch"), config.threshold_for(model.cfg))
    return Tracker(built, config)


def build_tracker(checkpoint: str | None = None, variant: str | None = None,
                  engine: EngineConfig | None = None, allow_random: bool = False, **cfg: object) -> Tracker:
    """Load a GRM (``variant`` defaults to the package default) and track with it; ``engine`` defaults to
    ``EngineConfig()`` (backend auto on the CPU). Remaining keyword arguments are ``TrackerConfig`` fields.
    """
    engine = engine or EngineConfig()
    config = TrackerConfig(**cfg)
    resolve_dtype(engine.dtype, resolve_device(engine.device))  # fail before loading weights
    return tracker_for(load_model(variant or DEFAULT_VARIANT, checkpoint, allow_random=allow_random), config,
                       engine)
