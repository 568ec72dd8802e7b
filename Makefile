# fleetd: the entry points a newcomer and CI use. Each target is a thin wrapper around a
# script in scripts/, so the same thing can be run without make.

SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help setup demo test check bench clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z]+:.*## / {printf "  make %-6s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## install and start the services, create .venv, migrate the database
	@bash scripts/setup.sh

demo: ## run the daemon, 20 simulated robots and 5 drivers, and a live status table
	@bash scripts/demo.sh

test: ## lint, type checks and the whole test suite against real services
	@bash scripts/test.sh

check: ## lint, type and import-contract checks only (no services needed)
	@bash scripts/test.sh --check

bench: setup ## run the benchmarks (benchmarks/run_all.sh)
	@if [ -f benchmarks/run_all.sh ]; then \
		bash benchmarks/run_all.sh; \
	else \
		echo "benchmarks/run_all.sh does not exist yet: no benchmarks to run" >&2; exit 1; \
	fi

clean: ## remove caches and demo run files (keeps .venv)
	rm -rf .run .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache build
	find . -path ./.venv -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
