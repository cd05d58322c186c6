"""OPE evaluation: run trackers over sequences, score them by the benchmarks' rules, report.

Importable without rclpy and without the GRM model code (the "grm" adapter imports it lazily).
"""

from grm_ros.evaluation.metrics import (
    IOU_THRESHOLDS,
    LAYOUT_PROTOCOL,
    PROTOCOLS,
    Protocol,
    Score,
    center_error,
    get_protocol,
    iou,
    precision_curve,
    score_sequence,
    success_curve,
    summarize,
)
from grm_ros.evaluation.ope import OPEResult, OPETracker, read_result, run_ope, run_sequence, write_result

__all__ = [
    "IOU_THRESHOLDS",
    "LAYOUT_PROTOCOL",
    "PROTOCOLS",
    "OPEResult",
    "OPETracker",
    "Protocol",
    "Score",
    "center_error",
    "get_protocol",
    "iou",
    "precision_curve",
    "read_result",
    "run_ope",
    "run_sequence",
    "score_sequence",
    "success_curve",
    "summarize",
    "write_result",
]
