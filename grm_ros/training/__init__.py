"""Training GRM with the authors' recipe, and the synthetic videos the default model learns from."""

from grm_ros.training.losses import LossWeights, tracking_loss
from grm_ros.training.sampler import PairDataset, SamplerConfig, SequenceSource, SyntheticSource
from grm_ros.training.synthetic import SyntheticVideo, SynthParams, write_sequence
from grm_ros.training.trainer import Trainer, TrainResult, TrainSettings

__all__ = [
    "LossWeights",
    "PairDataset",
    "SamplerConfig",
    "SequenceSource",
    "SynthParams",
    "SyntheticSource",
    "SyntheticVideo",
    "TrainResult",
    "TrainSettings",
    "Trainer",
    "tracking_loss",
    "write_sequence",
]
