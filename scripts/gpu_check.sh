#!/usr/bin/env bash
# GPU check in one command (< 8 minutes on an H100/H200): reference path (eager fp32) against the fast path
# (boolean-mask SDPA, fp16/bf16, CUDA graphs per bucket) for vitb_256 and the default variant, the tracker
# at 640x480 and 1920x1080, and the node end to end at 1080p when rclpy is importable.
# Needs python3 with a CUDA torch, numpy and pyyaml; opencv for the tracker part; ROS 2 for the node part.
# Every part writes JSON into one folder: $OUT if set, else out/gpu_check. Usage: bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
DEST=${OUT:-out/gpu_check}
mkdir -p "$DEST"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
[ -f install/local_setup.bash ] && [ -f scripts/env.sh ] && source scripts/env.sh
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
status=0

run() {  # name, then the command; a failing part is reported and the others still run
    local name=$1; shift
    echo "== $name"
    if timeout 240 "$@" >"$DEST/$name.log" 2>&1; then cat "$DEST/$name.log" | grep -v "^\[\|WARNING"
    else echo "!! $name failed (exit $?), see $DEST/$name.log"; tail -20 "$DEST/$name.log"; status=1; fi
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$DEST/nvidia-smi.csv" 2>&1
"$PY" - <<'PY' >"$DEST/environment.json" || { echo "!! torch with CUDA is required"; exit 1; }
import json, platform, torch
assert torch.cuda.is_available(), "torch.cuda.is_available() is False"
print(json.dumps({"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
                  "device": torch.cuda.get_device_name(), "cudnn": torch.backends.cudnn.version()}))
PY
cat "$DEST/environment.json"

# Model forward: reference (fp32 eager) vs fast (fp16 + CUDA graph) and fast fp32, batches 1/4/8.
run model_fp16 "$PY" -m grm_ros.bench --device cuda --dtype fp16 --variants vitb_256 small_cpu \
    --batches 1 4 8 --runs 50 --skip tracker node --out "$DEST/model_fp16.json"
run model_bf16 "$PY" -m grm_ros.bench --device cuda --dtype bf16 --variants vitb_256 \
    --batches 1 --runs 50 --skip tracker node --out "$DEST/model_bf16.json"

# Tracker per frame (crops + forward + decode), both geometries, 1 and 4 targets, both resolutions.
if "$PY" -c "import cv2" 2>/dev/null; then
    for variant in small_cpu vitb_256; do
        run "tracker_$variant" "$PY" -m grm_ros.bench --device cuda --tracker-variant "$variant" \
            --frames 50 --skip model node --out "$DEST/tracker_$variant.json"
    done
else
    echo "== tracker: skipped, opencv (cv2) is not importable here" | tee "$DEST/tracker.skipped"
fi

# Node end to end at 1080p (image stamp -> tracks received, real rclpy on loopback).
if "$PY" -c "import rclpy, grm_ros.msg" 2>/dev/null; then
    run node_vitb_256 "$PY" -m grm_ros.bench --device cuda --tracker-variant vitb_256 --frames 50 \
        --skip model tracker --out "$DEST/node_vitb_256.json"
else
    echo "== node: skipped, rclpy (ROS 2) or the built grm_ros interfaces are not importable here" \
        | tee "$DEST/node.skipped"
fi
echo "JSON and logs in $DEST"
exit $status
