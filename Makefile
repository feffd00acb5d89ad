# Two commands matter: `make run` and `make test`. Everything else supports them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DURATION ?= 0

.PHONY: run test test-kafka test-tansu lint format chaos resources bench clean

$(STAMP): pyproject.toml
	@# Headless Chromium for the fleet page test (Debian package; no browser downloads).
	@test -x /usr/bin/chromium || apt-get install -y -qq chromium >/dev/null 2>&1 \
		|| (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "warning: could not install chromium; tests/web/test_fleet_page.py needs it"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	@# Apache Kafka's jars (Maven, cached) and its console tools as .venv/bin wrappers.
	$(BIN)/streamapp dev tools \
		|| echo "warning: no Java 17/Maven: the embedded broker falls back to Tansu, no Kafka console tools"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/streamapp run --duration $(DURATION)

# The whole suite on Apache Kafka, then the Tansu fallback's own small job.
test: lint test-kafka test-tansu

test-kafka: $(STAMP)
	STREAMAPP_BROKER=kafka $(BIN)/pytest -m "not chaos and not resources"

test-tansu: $(STAMP)
	STREAMAPP_BROKER=tansu $(BIN)/pytest -m "tansu and not chaos and not resources"

# On a 3-broker Apache Kafka cluster (replication 3, min.insync.replicas=2).
chaos: $(STAMP)
	STREAMAPP_BROKER=kafka $(BIN)/pytest -m chaos -s

resources: $(STAMP)
	$(BIN)/pytest -m resources -s

bench: $(STAMP)
	@for name in inference archive features rul; do $(BIN)/streamapp bench $$name --json || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check streamapp tests
	$(BIN)/ruff format --check streamapp tests
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format streamapp tests
	$(BIN)/ruff check --fix streamapp tests

clean:
	rm -rf $(VENV) .streamapp .pytest_cache
