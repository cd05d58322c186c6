# Every target sets up what it needs first (idempotent), so each works on a bare machine.
SHELL := /bin/bash
RUN := source scripts/env.sh &&
SHARED ?= $(abspath ../shared)

# The default model's training run (model card in README.md). The step count sets the length; the
# time budget is a safety cap for 2 CPU cores.
TRAIN_STEPS ?= 9500
TRAIN_BUDGET ?= 2.8h

.PHONY: setup test lint demo eval bench calibrate export train-default synth-heldout geometry-check clean

setup:
	@bash scripts/setup.sh

test: setup
	@$(RUN) ruff check . && python -m pytest -q -m "not slow"

lint: setup
	@$(RUN) ruff check .

demo: setup
	@$(RUN) python -m grm_ros.ros.demo

# GRM (default model), NanoTrack and CSRT on ../shared/sot: report.md, report.csv, curves PNG.
eval: setup
	@$(RUN) grm-eval --trackers grm,nanotrack,csrt --root $(SHARED)/sot --out out/eval \
	  --reference $(SHARED)/baselines/results_dev.tsv

# Latency of the model (reference, fast and compiled), the tracker and the node; JSON in out/bench.
bench: setup
	@$(RUN) python -m grm_ros.bench --threads 2 --runs 20 --frames 20 --compile --out out/bench/bench.json

# Division skipping (appendix C.2): per-layer interaction rates of the default model -> derived variant.
calibrate: setup
	@$(RUN) python -m grm_ros.bench.calibrate --variant small_cpu --max-frames 60 \
	  --out out/calibrate/small_cpu_skip.yaml

# ONNX export of the default model, checked against PyTorch with onnxruntime.
export: setup
	@$(RUN) python -m grm_ros.model.export --variant small_cpu --out out/export/grm_small_cpu.onnx --threads 1

train-default: setup
	@$(RUN) python -m grm_ros.training train --variant small_cpu \
	  --data synthetic@3 --data sot_train@1 --steps $(TRAIN_STEPS) --time-budget $(TRAIN_BUDGET) \
	  --batch 32 --lr 4e-4 --backbone-lr-scale 1.0 --threads 1 --workers 1 --seed 0 \
	  --out .cache/train-default --resume auto --eval-pairs 256 --save-every 500 --export grm_ros/model/weights/default.pth

synth-heldout: setup
	@$(RUN) grm-synth --out .cache/synth-heldout --count 20 --seed 0 --split heldout

# Reference (cv2) against device (torch) crops on real frames, ~5 minutes on 2 cores.
geometry-check: setup
	@$(RUN) python -m grm_ros.tracking.geometry_check --frames 30

clean:
	rm -rf build install log
