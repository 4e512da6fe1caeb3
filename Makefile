# mernlib — run `make help` for the list of targets.
# The virtual environment lives in .venv; every target creates or reuses it.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
VPY    := $(VENV)/bin/python
# These machines carry the CPU build of torch 2.13.0 on disk; asking for it by exact version keeps pip
# from fetching a multi-GB CUDA build. Elsewhere, override: make run TORCH_SPEC="torch>=2.1".
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed
SCALE  ?= quick
CORPUS ?= sample
SEED   ?= 13
# make lab RUN=latest (or RUN=<a folder of runs/>) opens a run's executed notebooks instead of notebooks/.
RUN    ?=
LAB_DIR := $(if $(RUN),runs/$(RUN),notebooks)
# Containers often run as root; Jupyter refuses to start as root unless told that it is meant.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.DEFAULT_GOAL := help
.PHONY: help install run test reproduce lab lint format strip install-cells clean

help: ## list the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-z-]+:.*## /{printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VPY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(VPY)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet "$(TORCH_SPEC)"
	$(VPY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

install: $(STAMP) ## create or reuse .venv and install mernlib with its dependencies

run: $(STAMP) ## execute every notebook on the bundled sample with papermill; report in runs/latest/
	@$(VPY) -m mernlib run --scale $(SCALE) --corpus $(CORPUS) --seed $(SEED)

test: $(STAMP) ## the whole test suite (unit tests + papermill smoke run of every notebook); CI runs this
	$(VPY) -m pytest -q

reproduce: $(STAMP) ## full-scale runs on the real corpora (needs MERNLIB_DATA); writes results/
	$(VPY) -m mernlib reproduce all

lab: $(STAMP) ## open JupyterLab on notebooks/; RUN=latest opens the last run's executed notebooks
	@test -d "$(LAB_DIR)" || { echo "no $(LAB_DIR): 'make run' makes runs/latest" >&2; exit 2; }
	$(VENV)/bin/jupyter lab $(ALLOW_ROOT) "$(LAB_DIR)"

lint: $(STAMP) ## ruff check and format check
	$(VENV)/bin/ruff check mernlib tests benchmarks
	$(VENV)/bin/ruff format --check mernlib tests benchmarks

format: $(STAMP) ## ruff format the code
	$(VENV)/bin/ruff format mernlib tests benchmarks

strip: $(STAMP) ## remove outputs and execution counts from the notebooks
	$(VPY) -m mernlib strip notebooks/*.ipynb

install-cells: $(STAMP) ## write pyproject.toml's repository URL into every notebook's first (install) cell
	$(VPY) -c "from mernlib.runner import write_install_cells; print(*write_install_cells(), sep='\n')"

clean: ## remove runs/ and caches (keeps .venv)
	rm -rf runs .pytest_cache .ruff_cache
