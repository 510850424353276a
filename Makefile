# One entry point for everything: run, test, lint, bench, schema, migration.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?= -n 2 -rfEs

.DEFAULT_GOAL := help
.PHONY: help run test fuzz lint format bench schema migration assets frontend clean

help:  ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/activate:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed  ## Serve on http://127.0.0.1:8000 (migrates; creates the demo site on an empty database)
	$(BIN)/datasaas serve --demo

lint: $(VENV)/.dev-installed  ## ruff + mypy --strict + the layering contracts (import-linter)
	$(BIN)/ruff check datasaas tests benchmarks
	$(BIN)/ruff format --check datasaas tests benchmarks
	$(BIN)/mypy datasaas benchmarks
	$(BIN)/lint-imports --no-cache

format: $(VENV)/.dev-installed  ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix datasaas tests benchmarks
	$(BIN)/ruff format datasaas tests benchmarks

test: lint  ## Lint, then the whole test suite (PostgreSQL cases need DATASAAS_TEST_POSTGRES_URL)
	$(BIN)/pytest $(PYTEST_ARGS)

fuzz: $(VENV)/.dev-installed  ## schemathesis, every check and phase, thousands of cases, fresh seed
	DATASAAS_FUZZ_EXAMPLES=$${DATASAAS_FUZZ_EXAMPLES:-100} DATASAAS_FUZZ_SEED=$${DATASAAS_FUZZ_SEED:-} \
	DATASAAS_FUZZ_PHASES=examples,coverage,fuzzing,stateful $(BIN)/pytest tests/fuzz -p no:xdist -s -q

SCALE ?= M
BENCH_POSTGRES ?=
bench: $(VENV)/.dev-installed  ## Reads at 1M visitors, writes under load, reads under writes (SCALE=S: quick; BENCH_POSTGRES=URL: PostgreSQL too)
	$(BIN)/python -m benchmarks.run $(if $(filter S,$(SCALE)),--visitors 20000 --runs 5) $(if $(BENCH_POSTGRES),--postgres $(BENCH_POSTGRES))
	$(BIN)/python -m benchmarks.writes --scale $(SCALE) $(if $(BENCH_POSTGRES),--postgres $(BENCH_POSTGRES))
	$(BIN)/python -m benchmarks.mixed $(if $(filter S,$(SCALE)),--visitors 20000 --runs 5)
	$(if $(BENCH_POSTGRES),$(BIN)/python -m benchmarks.mixed $(if $(filter S,$(SCALE)),--visitors 20000 --runs 5) --postgres $(BENCH_POSTGRES))

schema: $(VENV)/.installed  ## Export the GraphQL schema to schema.graphql
	$(BIN)/strawberry export-schema datasaas.schema:schema --output schema.graphql

migration: $(VENV)/.dev-installed  ## New Alembic revision from model changes: make migration m="message"
	$(BIN)/python -m datasaas.storage.migrate revision "$(m)"

assets:  ## Rebuild the explorers (GraphiQL, Swagger UI, ReDoc) from the pinned npm packages; needs Node
	cd frontend/explorers && npm ci --no-audit --no-fund && npm run build

frontend:  ## Rebuild the dashboard (frontend/dashboard) into datasaas/static/dashboard; needs Node
	cd frontend/dashboard && npm ci --no-audit --no-fund && npm run build

clean:  ## Remove the venv, caches and local data
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache data
