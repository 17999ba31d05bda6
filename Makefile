# precisionrecon: `make bench` (set up + main job) and `make test` (set up + test suite).
PY ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
# Always pin torch: an unpinned torch pulls a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0

.PHONY: setup build bench bench-projectors test test-slow lint clean

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet "$(TORCH_PIN)"
	$(PYTHON) -m pip install --quiet -e ".[dev]" "$(TORCH_PIN)"
	touch $@

setup: $(VENV)/.installed

# Compiled CPU kernels (rebuilt only when a source changed) and the nvcc header check.
build: setup
	$(PYTHON) -m precisionrecon._kernels.build

# The main job: the reconstruction benchmark (default suite, pretrained models), a few minutes.
bench: build
	$(VENV)/bin/precisionrecon bench

bench-projectors: build
	$(PYTHON) benchmarks/projectors.py

lint: setup
	$(PYTHON) -m ruff check .

test: build lint
	$(PYTHON) -m pytest

test-slow: build
	$(PYTHON) -m pytest -m slow

clean:
	rm -rf $(VENV) precisionrecon/_kernels/lib build *.egg-info
