# Every target sets up what it needs first (idempotent), so each works on a bare machine.
SHELL := /bin/bash
RUN := source scripts/env.sh &&
SHARED ?= $(abspath ../shared)

# The default model's training recipe (grm_ros/training/recipes/nanostem_256.py; model card in README.md).
# Step-based and deterministic by seed; rerun the same command to continue an interrupted run.
TRAIN_OUT ?= .cache/train-default

.PHONY: setup test lint demo eval bench calibrate export train-default train-ablations calibrate-lost \
  synth-heldout geometry-check fuzz soak clean distractor-bench ablation-appendix

setup:
	@bash scripts/setup.sh

test: setup
	@$(RUN) ruff check . && python -m pytest -q -m "not slow"

lint: setup
	@$(RUN) ruff check .

# The property-based fuzz suites (library tracker and live node) with 20x the examples CI runs, drawn at
# random; a failing example is kept in .cache/hypothesis and replayed first next time.
fuzz: setup
	@$(RUN) time GRM_FUZZ_SCALE=20 OMP_NUM_THREADS=1 python -m pytest -q --hypothesis-show-statistics \
	  test/tracking/test_fuzz_tracker.py test/ros/test_fuzz_node.py

# 10 minutes of frames through the node as its own process: RSS growth per 10k frames, latency over time.
soak: setup
	@$(RUN) OMP_NUM_THREADS=1 python -m grm_ros.bench.soak --minutes 10 --out out/soak/soak.json

demo: setup
	@$(RUN) python -m grm_ros.ros.demo

# GRM (default model), NanoTrack and CSRT on ../shared/sot: report.md, report.csv, curves PNG.
eval: setup
	@$(RUN) grm-eval --trackers grm,nanotrack,csrt --root $(SHARED)/sot --out out/eval \
	  --reference $(SHARED)/baselines/results_dev.tsv

# Latency of the model on every backend here (and the reference path), the tracker (engine.backend auto)
# next to NanoTrack v2, and the node; JSON in out/bench.
bench: setup
	@$(RUN) python -m grm_ros.bench --threads 2 --runs 20 --frames 20 --compile --out out/bench/bench.json
	@echo "the default tracker as the node runs it (engine.threads 1, engine.backend auto), next to NanoTrack v2:"
	@$(RUN) python -m grm_ros.bench --threads 1 --skip model node --resolutions 640x480 --targets 1 \
	  --frames 60 --out out/bench/tracker_1thread.json

# Division skipping (appendix C.2): per-layer interaction rates of the default model -> derived variant.
calibrate: setup
	@$(RUN) python -m grm_ros.tools.calibrate --variant nanostem_256 --max-frames 60 \
	  --out out/calibrate/nanostem_256_skip.yaml

# ONNX export of the default model, checked against PyTorch with onnxruntime.
export: setup
	@$(RUN) python -m grm_ros.tools.export --variant nanostem_256 --out out/export/grm_nanostem_256.onnx \
	  --threads 1

train-default: setup
	@$(RUN) OMP_NUM_THREADS=1 python -m grm_ros.training recipe nanostem_256 --out $(TRAIN_OUT) \
	  --resume auto --threads 1 --workers 1 --export grm_ros/model/weights/nanostem_256.pth

# The recipe's ablations at equal budget: a random stem trained throughout, and the stem frozen throughout.
train-ablations: setup
	@$(RUN) OMP_NUM_THREADS=1 python -m grm_ros.training recipe nanostem_256 --stem-init random \
	  --out $(TRAIN_OUT)-randomstem --threads 1 --workers 1
	@$(RUN) OMP_NUM_THREADS=1 python -m grm_ros.training recipe nanostem_256 --frozen-stem \
	  --out $(TRAIN_OUT)-frozenstem --threads 1 --workers 1

# TRACKING/LOST thresholds of the default model, chosen on training data only: the real training sequences
# (../shared/sot_train) and 24 synthetic train-split videos.
calibrate-lost: setup
	@$(RUN) grm-synth --out .cache/synth-train --count 24 --seed 1 --split train >/dev/null
	@$(RUN) python -m grm_ros.evaluation.confidence --root $(SHARED)/sot_train --root .cache/synth-train

synth-heldout: setup
	@$(RUN) grm-synth --out .cache/synth-heldout --count 20 --seed 0 --split heldout

# Failure case A of the paper's appendix: 12 held-out synthetic crossings and the DEV sequences with
# distractors; per dividing block, the distractor's / target's search tokens that interact (README).
distractor-bench: setup
	@$(RUN) OMP_NUM_THREADS=1 python -m grm_ros.evaluation.distractors --root $(SHARED)/sot --out out/distractors

# The appendix ablation at equal budget (README "Appendix ablation"): the recipe's first stage (500 steps,
# stem frozen, seed 0) trained four ways, resumable, then every row evaluated in one run: DEV AUC,
# distractor-set AUC, interaction on distractor tokens, fps next to NanoTrack; out/ablation.
ABL_OUT ?= .cache/abl
ABL_TRAIN := OMP_NUM_THREADS=1 python -m grm_ros.training recipe nanostem_256 --frozen-stem --stages 1 \
  --threads 1 --workers 1
ABL_CK := 1_frozen_stem/final.pth
ablation-appendix: setup
	@$(RUN) $(ABL_TRAIN) --out $(ABL_OUT)-base
	@$(RUN) $(ABL_TRAIN) --out $(ABL_OUT)-c1 --division-loss 0.5
	@$(RUN) $(ABL_TRAIN) --out $(ABL_OUT)-c3token --variant nanostem_256_c3token
	@$(RUN) $(ABL_TRAIN) --out $(ABL_OUT)-c3region --variant nanostem_256_c3region
	@$(RUN) OMP_NUM_THREADS=1 python -m grm_ros.bench.ablation --root $(SHARED)/sot --out out/ablation \
	  --row baseline $(ABL_OUT)-base/$(ABL_CK) nanostem_256 off \
	  --row "+ C.1" $(ABL_OUT)-c1/$(ABL_CK) nanostem_256 off \
	  --row "C.3 token" $(ABL_OUT)-c3token/$(ABL_CK) nanostem_256_c3token off \
	  --row "C.3 region" $(ABL_OUT)-c3region/$(ABL_CK) nanostem_256_c3region off \
	  --row "+ template update (replace)" $(ABL_OUT)-base/$(ABL_CK) nanostem_256 replace \
	  --row "+ template update (dual)" $(ABL_OUT)-base/$(ABL_CK) nanostem_256 dual

# Reference (cv2) against device (torch) crops on real frames, ~5 minutes on 2 cores.
geometry-check: setup
	@$(RUN) python -m grm_ros.tools.geometry_check --frames 30

clean:
	rm -rf build install log
