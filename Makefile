# Two commands matter: `make run` and `make test`. Everything else supports them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DURATION ?= 0

.PHONY: run test lint format chaos resources bench clean

$(STAMP): pyproject.toml
	@# Headless Chromium for the fleet page test (Debian package; no browser downloads).
	@test -x /usr/bin/chromium || apt-get install -y -qq chromium >/dev/null 2>&1 \
		|| (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "warning: could not install chromium; tests/web/test_fleet_page.py needs it"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/streamapp run --duration $(DURATION)

test: $(STAMP)
	$(BIN)/ruff check streamapp tests
	$(BIN)/ruff format --check streamapp tests
	$(BIN)/pytest -m "not chaos and not resources"

chaos: $(STAMP)
	$(BIN)/pytest -m chaos -s

resources: $(STAMP)
	$(BIN)/pytest -m resources -s

bench: $(STAMP)
	@for name in inference archive features rul; do $(BIN)/streamapp bench $$name --json || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check streamapp tests
	$(BIN)/ruff format --check streamapp tests

format: $(STAMP)
	$(BIN)/ruff format streamapp tests
	$(BIN)/ruff check --fix streamapp tests

clean:
	rm -rf $(VENV) .streamapp .pytest_cache
