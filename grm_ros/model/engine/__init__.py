"""One inference engine with pluggable backends (see ``inference_engine``)."""

from grm_ros.model.engine.buckets import BUCKETS, Bucketed, bucket_for, pad_to
from grm_ros.model.engine.inference_engine import (
    BACKENDS,
    DTYPES,
    EngineConfig,
    InferenceEngine,
    resolve_device,
    resolve_dtype,
)
from grm_ros.model.engine.network import MAP_NAMES, HeadMaps, MapsNet, example_inputs

__all__ = [
    "BACKENDS",
    "BUCKETS",
    "DTYPES",
    "MAP_NAMES",
    "Bucketed",
    "EngineConfig",
    "HeadMaps",
    "InferenceEngine",
    "MapsNet",
    "bucket_for",
    "example_inputs",
    "pad_to",
    "resolve_device",
    "resolve_dtype",
]
