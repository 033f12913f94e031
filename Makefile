# The two commands of the README: `make up` and `make test`. Each creates or updates the
# virtualenv by itself, so a fresh clone needs nothing else than Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed-stamp
CHROMIUM ?= /usr/bin/chromium

.PHONY: up test lint typecheck bench check chromium compose-check clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/aspri up

# Browser tests need Debian's chromium; install it when we can (root or sudo), else they skip.
chromium:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  elif command -v sudo >/dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not found at $(CHROMIUM): browser tests will be skipped"; fi; }

test: $(STAMP) chromium
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check aspri tests bench
	$(BIN)/ruff format --check aspri tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

bench: $(STAMP)
	$(BIN)/python bench/streams.py
	$(BIN)/python bench/cron.py
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/mcp.py
	$(BIN)/python bench/engine.py

compose-check: $(STAMP)
	$(BIN)/docker-compose config -q 2>/dev/null || $(BIN)/compose config -q

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
