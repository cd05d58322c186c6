"""The GRM network (CVPR 2023), its variants, and safe checkpoint loading. Imports without rclpy."""

from grm_ros.model.checkpoint import (
    DEFAULT_CHECKPOINT,
    DEFAULT_VARIANT,
    UnsafeCheckpointError,
    load_model,
    packaged_checkpoint,
    read_checkpoint,
    read_state_dict,
    save_checkpoint,
    weights_file,
)
from grm_ros.model.config import GRMConfig, list_variants, load_variant
from grm_ros.model.finetune import init_from_pretrained_vit, param_groups
from grm_ros.model.grm import GRM
from grm_ros.model.head import CenterHead, cal_bbox

__all__ = [
    "DEFAULT_CHECKPOINT",
    "DEFAULT_VARIANT",
    "GRM",
    "CenterHead",
    "GRMConfig",
    "UnsafeCheckpointError",
    "cal_bbox",
    "init_from_pretrained_vit",
    "list_variants",
    "load_model",
    "load_variant",
    "packaged_checkpoint",
    "param_groups",
    "read_checkpoint",
    "read_state_dict",
    "save_checkpoint",
    "weights_file",
]
