# tellusonce: every entry point. `make help` lists the targets; CI runs `make test`.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BROKER := deploy/kafka/broker.sh
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help install tools jars run test test-unit test-integration test-faults bench bench-instructions lint format broker-start broker-stop broker-status clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-20s %s\n", $$1, $$2}'

# $(call venv,PYTHON,DIR,EXTRAS): DIR made by PYTHON, with tellusonce and EXTRAS installed
define venv
	@$(1) -m venv $(2)
	@$(2)/bin/python -m pip install --quiet --upgrade pip
	@$(2)/bin/python -m pip install --quiet --progress-bar off -e '.[$(3)]'
	@touch $@
endef

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "Python 3.11+ is needed (found $$($(PYTHON) --version)); set PYTHON=python3.11"; exit 1; }
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { echo "==> installing python3-venv (Debian)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends python3-venv >/dev/null; }
	@echo "==> creating $(VENV) and installing tellusonce with its dev tools"
	$(call venv,$(PYTHON),$(VENV),dev)
	@echo "==> installed into $(VENV)"

install: $(INSTALLED) ## create .venv and install the package and dev tools

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
tools: ## Prometheus, promtool, Chromium and a PostgreSQL server for the tests (Debian, if missing)
	@missing=""; \
	command -v prometheus >/dev/null && command -v promtool >/dev/null || missing="prometheus"; \
	command -v chromium >/dev/null || command -v chromium-browser >/dev/null \
	  || missing="$$missing chromium"; \
	command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 \
	  || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  echo "==> installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends $$missing >/dev/null; \
	fi

jars: ## fetch the Kafka broker's jars from Maven Central (once)
	@$(BROKER) fetch

run: install jars ## the main job: broker, topics, all services, a real death to 4 confirmations
	@TELLUSONCE_DATA_DIR=$${TELLUSONCE_DATA_DIR:-.run/demo} $(BROKER) with $(BIN)/tellusonce demo

test: install jars tools lint ## lint, then unit and integration tests against a real local broker
	@echo "==> unit and integration tests (integration tests use a real Kafka broker on 127.0.0.1)"
	@$(BROKER) with $(BIN)/pytest $(PYTEST_ARGS)

test-unit: install tools ## unit tests only (no broker)
	@$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-integration: install jars tools ## integration tests only, against a real local broker
	@$(BROKER) with $(BIN)/pytest tests/integration $(PYTEST_ARGS)

test-faults: install jars tools ## the fault suite alone: crashes, broker loss, poison, locks, rebalances
	@$(BROKER) with $(BIN)/pytest tests/faults $(PYTEST_ARGS)

# `make bench` measures the services on an optimised CPython, as they are deployed (the
# python:3.11-slim image's is built with PGO and LTO). Debian's and Ubuntu's /usr/bin/python3 are
# such builds, with libpython linked in; pyenv's default build is neither (a shared libpython
# without -fno-semantic-interposition) and ran the consumers' hot path about a fifth slower
# (tests/bench/README.md). Used when it is 3.11 or newer and can make a venv; else $(PYTHON).
BENCH_PYTHON ?= $(shell /usr/bin/python3 -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' \
  2>/dev/null && echo /usr/bin/python3 || echo $(PYTHON))
BENCH_VENV := .venv-bench
comma := ,

$(BENCH_VENV)/.installed: pyproject.toml $(INSTALLED)  # (install's python3-venv step first)
	@echo "==> creating $(BENCH_VENV) with $(BENCH_PYTHON) ($$($(BENCH_PYTHON) --version)) for the benchmarks"
	$(call venv,$(BENCH_PYTHON),$(BENCH_VENV),dev$(comma)bench)

bench: jars $(BENCH_VENV)/.installed ## benchmarks against the bare transport: bench/results.json, .png (not in test)
	@$(BROKER) with $(BENCH_VENV)/bin/python -m tests.bench.run

bench-instructions: install ## instructions per event in the consumers' hot path (callgrind: noise-free)
	@command -v valgrind >/dev/null || { echo "==> installing valgrind (Debian)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends valgrind >/dev/null; }
	@echo "==> counting instructions under valgrind (about 2 minutes)"
	@log=$$(mktemp); trap 'rm -f "$$log" "$$log.out" "$$log.err"' EXIT; \
	  valgrind --tool=callgrind --collect-atstart=no --toggle-collect=functools_reduce \
	    --callgrind-out-file="$$log.out" --log-file="$$log" \
	    $(BIN)/python -m tests.bench.instructions 2>"$$log.err" \
	    || { tail -n 20 "$$log.err"; exit 1; }; \
	  sed -n 's/.*Collected : \([0-9]*\)/\1/p' "$$log" \
	    | awk -v n="$${BENCH_EVENTS:-300}" '{printf "consumers'"'"' hot path: %.3f M instructions per event\n", $$1 / n / 1e6}'

lint: install ## ruff (lint and format check) and mypy --strict
	@echo "==> ruff and mypy"
	@$(BIN)/ruff check --quiet .
	@$(BIN)/ruff format --check --quiet .
	@$(BIN)/mypy

format: install ## apply ruff's formatting and safe fixes
	@$(BIN)/ruff check --fix --quiet .
	@$(BIN)/ruff format --quiet .

broker-start: install jars ## start the local Kafka broker (KRaft, 127.0.0.1:9092) and leave it running (and install .venv)
	@$(BROKER) start

broker-stop: ## stop the local broker started by broker-start
	@$(BROKER) stop

broker-status: ## say whether a broker answers on 127.0.0.1:9092 (exits 0 either way; deploy/kafka/broker.sh status exits 1 if not)
	@$(BROKER) status || true

clean: broker-stop ## remove the venv, fetched jars, stores and broker data
	rm -rf $(VENV) $(BENCH_VENV) deploy/kafka/lib .run
