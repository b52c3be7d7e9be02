PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: run test bench lint snippet clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(DEVSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP) $@

# the example pools.toml names these keys; real deployments set their own
export DEMO_API_KEY ?= demo-key-change-me
export TEKHNOMARKET_API_KEY ?= tekhnomarket-key-change-me
export TEKHNOMARKET_GA4_SECRET ?= tekhnomarket-ga4-secret
export KLINIKA_API_KEY ?= klinika-key-change-me
export KLINIKA_GA4_SECRET ?= klinika-ga4-secret

run: $(STAMP)
	$(BIN)/callpath serve --config pools.toml

test: $(DEVSTAMP)
	@[ -x /usr/bin/chromium ] || $(BIN)/playwright install chromium || \
		echo "no /usr/bin/chromium and no Playwright browser: browser tests will fail"
	$(BIN)/python -m pytest -q

bench: $(DEVSTAMP)
	$(BIN)/python -m bench

lint: $(DEVSTAMP)
	$(BIN)/ruff check attribution tests bench scripts snippet
	$(BIN)/ruff format --check attribution tests bench scripts
	$(BIN)/mypy

snippet:
	$(BIN)/python snippet/build.py

clean:
	rm -rf $(VENV) .callpath .pytest_cache
