# dify_ce.kubernetes - developer entry points. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
PYTHON ?= python3
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# Parallel pytest workers for the cluster tests (each test has its own namespace).
PYTEST_WORKERS ?= 2

CLUSTER := tests/cluster/cluster.sh

.PHONY: help setup cluster-binaries cluster-modules cluster-up cluster-down demo test lint sanity \
	units integration faults programs molecule bench clean

help: ## Show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## Create .venv with the pinned tools; install the Debian packages tests need
	@tests/programs/setup-packages.sh

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

cluster-binaries: ## Build (or reuse) the control-plane binaries, cached outside the checkout
	@tests/cluster/build.sh >/dev/null

cluster-modules: ## Regenerate tests/cluster/tools/*/go.mod+go.sum from tests/cluster/versions.env
	tests/cluster/tools/gen-modules.sh

cluster-up: ## Start (or reuse) the local control plane; last line: KUBECONFIG=<path>
	@$(CLUSTER) up

cluster-down: ## Stop the local control plane (only its own processes)
	@$(CLUSTER) down

demo: setup ## Local cluster + site.yml, then what was deployed
	@tests/demo.sh $(ARGS)

test: lint sanity units integration faults programs molecule ## Everything CI runs

lint: setup ## ruff, ansible-lint (production profile), shellcheck of the scripts
	ruff check .
	ruff format --check .
	ansible-lint --nocolor
	shellcheck $$(git ls-files "*.sh") .ci/run

sanity: setup ## ansible-test sanity (local, offline)
	tests/sanity/run.sh

units: setup ## Unit tests (no cluster, seconds)
	pytest -q tests/unit

integration: setup cluster-binaries ## Tests against the local control plane
	pytest -q -n $(PYTEST_WORKERS) --dist loadfile tests/integration

faults: setup cluster-binaries ## Every entry point interrupted at its task boundaries, then run again (docs/reliability.md)
	rm -rf tests/output/faults
	pytest -q -n $(PYTEST_WORKERS) --dist load -m faults tests/faults
	python tests/faults/summary.py

programs: setup cluster-binaries ## squid, nginx, PostgreSQL, Redis run for real with the rendered configuration
	pytest -q -m programs tests/programs

molecule: setup cluster-binaries ## molecule test for every scenario (default, upgrade)
	molecule test --all

bench: setup cluster-binaries ## Speed and API cost against helm and kubectl apply on the same objects (not part of test)
	python tests/bench/bench.py

clean: ## Remove build output (not the venv, not the binary cache)
	rm -rf .build tests/output .pytest_cache
