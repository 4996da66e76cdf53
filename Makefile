# campaignflow — every target works on a fresh machine with Python >= 3.11 and make; the tests
# also need Node.js >= 18 with npm (Stoplight Prism for the contract tests, from package-lock.json).
# Dependencies come from requirements.lock (hash-pinned); `make lock` regenerates it.

PYTHON ?= python3
VENV   ?= .venv
UV_VERSION := 0.13.9
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: install install-node install-tools run test test-unit test-integration test-contract lint format typecheck bench lock schema openapi clean

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: requirements.lock pyproject.toml | $(UV)
	$(UV) pip sync --quiet --compile-bytecode --python $(BIN)/python --require-hashes requirements.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

# Stoplight Prism for the contract tests (tests/contract), pinned in package-lock.json.
node_modules/.installed: package-lock.json package.json
	@command -v npm >/dev/null || { echo "npm (Node.js >= 18) is needed for the contract tests"; exit 1; }
	npm ci --no-audit --no-fund
	touch $@

install: $(VENV)/.installed ## create .venv and install the locked Python dependencies

install-node: node_modules/.installed ## the locked npm tools of the contract tests (Prism)

# promtool (Debian's `prometheus` package): the tests check /metrics, the alert rules and their
# unit tests with it, and fail without it.
PROMTOOL_INSTALL := apt-get install -y --no-install-recommends prometheus
install-tools: ## promtool for the metrics and alert-rule tests (apt, as root)
	@if command -v promtool >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(PROMTOOL_INSTALL); \
	else \
		echo "promtool is missing; install it with: sudo $(PROMTOOL_INSTALL)"; exit 1; \
	fi

run: install ## start the platform on SQLite with the example workflows loaded
	$(BIN)/campaignflow up --host $(HOST) --port $(PORT) --load-examples examples/workflows

test: install install-node install-tools ## lint, type-check and run every test (PostgreSQL is started if none is configured)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n 2 --dist loadgroup

test-unit: install
	$(BIN)/python -m pytest tests/unit

test-integration: install
	$(BIN)/python -m pytest tests/integration

test-contract: install install-node ## outgoing provider requests against the providers' specs (Prism)
	$(BIN)/python -m pytest tests/contract

lint: install ## ruff lint + format check, mypy --strict
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench: install ## run every benchmark in bench/ (one JSON line per figure)
	@set -e; for b in $(filter-out bench/_%,$(wildcard bench/*.py)); do $(BIN)/python $$b; done

schema: install ## regenerate docs/workflow.schema.json and docs/openapi.json from the code
	$(BIN)/python -m campaignflow.tools.export_docs

lock: $(UV) ## re-resolve requirements.lock from pyproject.toml
	$(UV) pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes --no-emit-index-url --no-emit-find-links -o requirements.lock

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
