"""Sequence readers shared by evaluation and training (no rclpy, no torch)."""

from grm_ros.datasets.coco import read_coco
from grm_ros.datasets.readers import (
    LAYOUTS,
    OTB_START_FRAMES,
    list_sequences,
    parse_uav_config,
    read_got10k,
    read_lasot,
    read_otb,
    read_trackingnet,
    read_uav123,
    read_uniform,
)
from grm_ros.datasets.sequence import Sequence, list_images, load_frame, read_boxes, read_flags, shared_root

__all__ = [
    "LAYOUTS",
    "OTB_START_FRAMES",
    "Sequence",
    "list_images",
    "list_sequences",
    "load_frame",
    "parse_uav_config",
    "read_boxes",
    "read_coco",
    "read_flags",
    "read_got10k",
    "read_lasot",
    "read_otb",
    "read_trackingnet",
    "read_uav123",
    "read_uniform",
    "shared_root",
]
