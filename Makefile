# Every target sets up what it needs first (idempotent), so each works on a bare machine.
SHELL := /bin/bash
RUN := source scripts/env.sh &&

.PHONY: setup test lint demo eval bench train-default clean

setup:
	@bash scripts/setup.sh

test: setup
	@$(RUN) ruff check . && python -m pytest -q -m "not slow"

lint: setup
	@$(RUN) ruff check .

demo: setup
	@$(RUN) python -m grm_ros.ros.demo

clean:
	rm -rf build install log
