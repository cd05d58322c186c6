"""The tracker node's parameters: one table with types, defaults, ranges and when each takes effect.

The table is the single source for the declarations (with descriptors), for validating a change, for
turning the values into the settings of the layers below (``EngineConfig``, ``TrackerConfig``,
``SelectionConfig``, ``Mono16Scaling``) and for the test that keeps ``config/tracker.yaml`` in step with the
node. Tracker defaults are read from ``TrackerConfig`` itself, so the two cannot drift apart.

``applies`` says when a change takes effect: "configure" (the model and tracker are rebuilt on the next
configure), "activate" (subscriptions are recreated on the next activate), "live" (the next message),
"startup" (read-only).
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

from grm_ros.model import DEFAULT_VARIANT, list_variants, load_variant
from grm_ros.model.engine import BACKENDS, DTYPES, EngineConfig
from grm_ros.ros.image_conversion import MONO16_SCALINGS, Mono16Scaling
from grm_ros.tracking.selection import POLICIES, SelectionConfig
from grm_ros.tracking.template_update import TEMPLATE_MODES, TemplateUpdateConfig
from grm_ros.tracking.tracker import GEOMETRIES, TrackerConfig

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")
_TRACKER = TrackerConfig()
_TEMPLATE = TemplateUpdateConfig()


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: bool | int | float | str | list[float]
    description: str
    applies: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = False

    @property
    def type(self) -> int:
        if isinstance(self.default, bool):
            return ParameterType.PARAMETER_BOOL
        if isinstance(self.default, int):
            return ParameterType.PARAMETER_INTEGER
        if isinstance(self.default, float):
            return ParameterType.PARAMETER_DOUBLE
        if isinstance(self.default, list):
            return ParameterType.PARAMETER_DOUBLE_ARRAY
        return ParameterType.PARAMETER_STRING

    def descriptor(self) -> ParameterDescriptor:
        text = self.description + (f" One of: {', '.join(self.choices)}." if self.choices else "")
        text += f" Applies: {self.applies}."
        descriptor = ParameterDescriptor(name=self.name, type=self.type, description=text,
                                         read_only=self.read_only)
        if self.low is not None and self.type == ParameterType.PARAMETER_INTEGER:
            descriptor.integer_range = [IntegerRange(from_value=int(self.low), to_value=int(self.high),
                                                     step=1)]
        elif self.low is not None and self.type == ParameterType.PARAMETER_DOUBLE:
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(self.low),
                                                                  to_value=float(self.high), step=0.0)]
        if self.choices:
            descriptor.additional_constraints = f"one of: {', '.join(self.choices)}"
        return descriptor

    def check(self, value: Any) -> None:
        """Raise ValueError naming the parameter if ``value`` has the wrong type, range or choice."""
        expected = type(self.default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected is list:  # rclpy hands double arrays over as array.array('d')
            if not isinstance(value, list | tuple | array) or \
                    not all(isinstance(v, int | float) for v in value):
                raise ValueError(f"{self.name} must be a list of numbers, got {value!r}")
        elif type(value) is not expected:
            raise ValueError(f"{self.name} must be of type {expected.__name__}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{self.name} must be finite, got {value!r}")
        if self.low is not None and not self.low <= value <= self.high:
            raise ValueError(f"{self.name} must be in [{self.low}, {self.high}], got {value!r}")
        if self.choices and value not in self.choices:
            raise ValueError(f"{self.name} must be one of {', '.join(self.choices)}; got {value!r}")


    def refusal(self, value: Any) -> str:
        """One line on why ROS refused ``value`` for this parameter (a params file or an override): its type
        is strict (1 is no double), its range and choices are the descriptor's."""
        kind = {bool: "a bool", int: "an integer", float: "a double", str: "a string",
                list: "a list of numbers"}[type(self.default)]
        allowed = (f" in [{self.low:g}, {self.high:g}]" if self.low is not None else
                   f", one of {', '.join(self.choices)}" if self.choices else "")
        hint = f" (write {value}.0)" if type(self.default) is float and type(value) is int else ""
        return f"parameter {self.name} = {value!r}: must be {kind}{allowed}{hint}"


def _tracker(name: str, description: str, low: float | None = None, high: float | None = None,
             choices: tuple[str, ...] = ()) -> ParamSpec:
    default = getattr(_TRACKER, name)
    return ParamSpec(f"tracker.{name}", default, description, "configure", low, high, choices)


def _template(name: str, description: str, low: float | None = None, high: float | None = None) -> ParamSpec:
    return ParamSpec(f"tracker.template_update.{name}", getattr(_TEMPLATE, name), description, "configure",
                     low, high)


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("checkpoint", "", "GRM checkpoint file (.pth); empty: the variant's packaged model "
              "(grm_ros/model/weights/<variant>.pth, named by the variant's yaml), if it ships one.",
              "configure"),
    ParamSpec("variant", DEFAULT_VARIANT, "GRM variant: a builtin name or a path to a variant YAML file. "
              f"Builtin: {', '.join(list_variants())}.", "configure"),
    ParamSpec("allow_random", False, "With an empty checkpoint and no packaged model for the variant, run "
              "with RANDOM weights instead of failing (tests only: the boxes are meaningless).",
              "configure"),
    ParamSpec("device", "cpu", "Torch device for inference: cpu, cuda or cuda:N.", "configure"),
    ParamSpec("dtype", "fp32", "Inference precision; fp16 and bf16 need CUDA.", "configure",
              choices=tuple(DTYPES)),
    ParamSpec("autostart", True, "Configure and activate on start-up.", "startup", read_only=True),
    ParamSpec("autostart_wait", 5.0, "Seconds autostart waits at most for a ~/transition_event listener "
              "(launch) to appear, so that launch sees both transitions; 0: at once.", "startup", 0.0, 60.0,
              read_only=True),
    ParamSpec("frame_buffer_size", 30, "Recent frames kept by stamp, so that set_target and detections can "
              "name the frame their box was drawn on.", "configure", 1, 1000),
    ParamSpec("max_targets", 8, "Most targets tracked at once; set_target and detections are refused or "
              "ignored beyond it.", "live", 1, 64),
    ParamSpec("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", "startup", 0.1, 60.0,
              read_only=True),
    ParamSpec("input.compressed", False, "Subscribe to sensor_msgs/CompressedImage on '<image>/compressed' "
              "(the resolved image topic plus /compressed) instead of sensor_msgs/Image on 'image'.",
              "activate"),
    ParamSpec("input.use_cv_bridge", True, "Decode 8-bit images with cv_bridge where it is installed "
              "(numpy otherwise).", "activate"),
    ParamSpec("input.mono16_scaling", "max", "16-bit mono to 8 bit: 'max' maps 0..frame maximum to 0..255; "
              "'range' maps input.mono16_low..input.mono16_high to 0..255 and clips.", "live",
              choices=MONO16_SCALINGS),
    ParamSpec("input.mono16_low", 0.0, "Raw value shown black under mono16_scaling 'range'.", "live",
              0.0, 65535.0),
    ParamSpec("input.mono16_high", 65535.0, "Raw value shown white under mono16_scaling 'range'.", "live",
              0.0, 65535.0),
    ParamSpec("detections.initialize", True, "Start targets from the 'detections' topic.", "live"),
    ParamSpec("detections.policy", "highest_score", "Which detections start targets: highest_score, "
              "nearest_center (of the image), best_iou (with detections.hint_box) start one target while "
              "none is tracked; all starts one per untracked detection up to max_targets.", "live",
              choices=POLICIES),
    ParamSpec("detections.classes", "", "Comma-separated class ids accepted from detections; empty: any.",
              "live"),
    ParamSpec("detections.min_score", 0.5, "Lowest detection score considered.", "live", 0.0, 1.0),
    ParamSpec("detections.hint_box", [0.0, 0.0, 0.0, 0.0], "x, y, w, h (pixels) for policy best_iou; zero "
              "size means no hint.", "live"),
    ParamSpec("detections.reacquire", True, "Re-initialise a LOST target from a detection that overlaps "
              "its last box, keeping its id.", "live"),
    ParamSpec("detections.min_iou", 0.3, "IoU at which a detection is the same object as a target "
              "(re-acquisition, and no duplicate start under policy all).", "live", 0.0, 1.0),
    ParamSpec("detections.match_class", True, "Re-acquire only from a detection of the target's class.",
              "live"),
    _tracker("geometry", "Crop implementation: device (torch, on the model's device) or reference (the "
             "authors' cv2 crops on the CPU).", choices=GEOMETRIES),
    ParamSpec("tracker.benchmark", "", "Benchmark whose division threshold the variant should use; empty: "
              "the variant's DEFAULT.", "configure"),
    ParamSpec("tracker.division_threshold", -1.0, "Division threshold tau; negative: the variant's value for "
              "tracker.benchmark.", "configure", -1.0, 1.0),
    ParamSpec("engine.backend", EngineConfig.backend, "Inference backend: auto (CUDA: cuda_graphs; CPU: "
              "the faster of torch and onnxruntime, timed at configure), torch (eager), compiled "
              "(torch.compile, about a minute per batch bucket), cuda_graphs (CUDA), onnxruntime (CPU, "
              "export cached in $GRM_ROS_CACHE), tensorrt (CUDA, needs the tensorrt package).", "configure",
              choices=BACKENDS),
    ParamSpec("debug.division", False, "Publish ~/division while someone subscribes: the first target's "
              "token division per dividing block over its search region (top: tokens that interact with "
              "the template; bottom: p(interact)). Needs module hooks, so engine.backend must be torch or "
              "auto (which then runs torch, slower than onnxruntime on a CPU).", "configure"),
    ParamSpec("engine.threads", 1, "Torch and onnxruntime CPU threads of the node process; 0 leaves "
              "torch's choice. One thread is fastest on small shared CPUs, where spinning OpenMP workers "
              "starve each other.", "configure", 0, 256),
    ParamSpec("tracker.lost_threshold", -1.0, "Confidence below which a frame counts as weak; negative: "
              "the variant's calibrated value (nanostem_256 0.5, small_cpu 0.55, others 0.25).", "configure",
              -1.0, 1.0),
    ParamSpec("tracker.recover_threshold", -1.0, "Confidence a LOST target needs to count as found again "
              "(>= lost_threshold); negative: the variant's value (nanostem_256 0.5, small_cpu 0.65, "
              "others 0.45).",
              "configure", -1.0, 1.0),
    _tracker("lost_after", "Consecutive weak frames before a target is LOST.", 1, 1000),
    _tracker("recover_after", "Consecutive strong frames before a LOST target is TRACKING again.", 1, 1000),
    ParamSpec("tracker.lost_search_scale", -1.0, "Search area factor for LOST targets (>= 1 looks "
              "further); negative: the variant's value (nanostem_256 and small_cpu 1.0, others 1.5).",
              "configure", -1.0, 4.0),
    _template("enabled", "Refresh the template from confident, stable frames."),
    ParamSpec("tracker.template_update.mode", _TEMPLATE.mode, "replace: a refresh swaps the template; dual: "
              "the refreshed crop becomes a second template beside the first, and their maps are averaged "
              "(two forwards' worth of work per target).", "configure", choices=TEMPLATE_MODES),
    ParamSpec("tracker.template_update.min_confidence", -1.0, "Confidence a frame needs to count towards a "
              "template refresh; negative: the tracker's recover threshold.", "configure", -1.0, 1.0),
    _template("min_iou", "IoU with the previous box a frame needs to count as stable.", 0.0, 1.0),
    _template("stable_frames", "Consecutive good frames before a refresh.", 1, 1000),
    _template("interval", "Frames between template refreshes.", 1, 100000),
    _template("probation", "Frames a refreshed template is watched before it is kept.", 1, 1000),
    _template("revert_margin", "Confidence drop that sends a refreshed template back to the first one.",
              0.0, 1.0),
)
SPECS: dict[str, ParamSpec] = {p.name: p for p in PARAMETERS}


@dataclass(frozen=True)
class NodeSettings:
    """Validated parameter values, grouped by the layer that uses them."""

    checkpoint: str | None
    variant: str
    allow_random: bool
    engine: EngineConfig
    frame_buffer_size: int
    diagnostics_period: float
    compressed: bool
    use_cv_bridge: bool
    division: bool
    mono16: Mono16Scaling
    selection: SelectionConfig
    tracker: TrackerConfig


def _check_variant(variant: str) -> None:
    if variant not in list_variants() and not Path(variant).is_file():
        raise ValueError(f"variant {variant!r} is neither a builtin ({', '.join(list_variants())}) "
                         "nor an existing variant YAML file")


def _or_variant(value: float) -> float | None:
    """Negative parameter values mean "the variant's calibrated value" (None in TrackerConfig)."""
    return None if value < 0 else value


def settings_from(values: Mapping[str, Any]) -> NodeSettings:
    """All parameter values -> NodeSettings; ValueError naming the parameter if any value is refused."""
    missing = sorted(set(SPECS) - set(values))
    if missing:
        raise ValueError(f"missing parameter(s): {', '.join(missing)}")
    for name, spec in SPECS.items():
        spec.check(values[name])
    v = dict(values)
    if not _DEVICE.match(v["device"]):
        raise ValueError(f"device must be cpu, cuda or cuda:N, got {v['device']!r}")
    _check_variant(v["variant"])
    hint = [float(x) for x in v["detections.hint_box"]]
    if len(hint) != 4:
        raise ValueError(f"detections.hint_box must have 4 numbers x, y, w, h, got {hint}")
    template = {f.name: v[f"tracker.template_update.{f.name}"] for f in fields(TemplateUpdateConfig)}
    template["min_confidence"] = _or_variant(template["min_confidence"])
    try:
        mono16 = Mono16Scaling(v["input.mono16_scaling"], v["input.mono16_low"], v["input.mono16_high"])
        selection = SelectionConfig(
            policy=v["detections.policy"],
            classes=tuple(c.strip() for c in v["detections.classes"].split(",") if c.strip()),
            min_score=v["detections.min_score"],
            hint_box=tuple(hint) if hint[2] > 0 and hint[3] > 0 else None,
            initialize=v["detections.initialize"], reacquire=v["detections.reacquire"],
            min_iou=v["detections.min_iou"], match_class=v["detections.match_class"],
            max_targets=v["max_targets"])
        tracker = TrackerConfig(
            geometry=v["tracker.geometry"], color_order="rgb", benchmark=v["tracker.benchmark"] or None,
            division_threshold=_or_variant(v["tracker.division_threshold"]),
            lost_threshold=_or_variant(v["tracker.lost_threshold"]),
            recover_threshold=_or_variant(v["tracker.recover_threshold"]),
            lost_after=v["tracker.lost_after"], recover_after=v["tracker.recover_after"],
            lost_search_scale=_or_variant(v["tracker.lost_search_scale"]),
            template_update=TemplateUpdateConfig(**template)).for_network(load_variant(v["variant"]))
    except ValueError as err:
        raise ValueError(f"parameters refused: {err}") from None
    backend = v["engine.backend"]
    if v["debug.division"]:
        if backend not in ("auto", "torch"):
            raise ValueError(f"debug.division reads the division with module hooks, which only the torch "
                             f"backend runs: set engine.backend to torch or auto, not {backend!r}")
        backend = "torch"
    engine = EngineConfig(backend=backend, device=v["device"], dtype=v["dtype"],
                          threads=v["engine.threads"] or None)
    return NodeSettings(
        checkpoint=v["checkpoint"] or None, variant=v["variant"], allow_random=v["allow_random"],
        engine=engine, frame_buffer_size=v["frame_buffer_size"],
        diagnostics_period=v["diagnostics_period"], compressed=v["input.compressed"],
        use_cv_bridge=v["input.use_cv_bridge"], division=v["debug.division"],
        mono16=mono16, selection=selection, tracker=tracker)


def defaults() -> dict[str, Any]:
    return {p.name: p.default for p in PARAMETERS}
