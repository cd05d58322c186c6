"""Training GRM: losses, the pair sampler, the trainer and the recipes (videos come from ``datasets``)."""

from grm_ros.training.losses import LossWeights, tracking_loss
from grm_ros.training.sampler import PairDataset, SamplerConfig, SequenceSource, SyntheticSource
from grm_ros.training.trainer import Trainer, TrainResult, TrainSettings

__all__ = [
    "LossWeights",
    "PairDataset",
    "SamplerConfig",
    "SequenceSource",
    "SyntheticSource",
    "TrainResult",
    "TrainSettings",
    "Trainer",
    "tracking_loss",
]
