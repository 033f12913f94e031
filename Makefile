# The two commands of the README: `make up` and `make test`. Each creates or updates the
# virtualenv by itself from uv.lock (exact versions and hashes), so a fresh clone needs nothing
# else than Python 3.11. uv itself comes from PyPI into .uv/, pinned here.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed-stamp
CHROMIUM ?= /usr/bin/chromium
UV_VERSION = 0.13.9
UV_HOME ?= .uv
UV = $(UV_HOME)/bin/uv
export UV_PROJECT_ENVIRONMENT = $(VENV)
export UV_LINK_MODE = copy

.PHONY: up test lint typecheck bench check chaos chromium compose-check lock clean

# uv from PyPI into .uv/: with the interpreter's own pip when it has one (no venv to build: ~10 s
# less on a first run), else through a small venv.
$(UV):
	$(PYTHON) -m pip install -q --disable-pip-version-check --root-user-action=ignore --target $(UV_HOME) uv==$(UV_VERSION) \
	  || { rm -rf $(UV_HOME) && $(PYTHON) -m venv $(UV_HOME) \
	       && $(UV_HOME)/bin/python -m pip install -q uv==$(UV_VERSION); }

# --locked: a pyproject.toml changed without `uv lock` stops here instead of drifting.
$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --quiet --locked --extra dev --python $(PYTHON)
	touch $(STAMP)

lock: $(UV)
	$(UV) lock

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

# The fault-injection suite's long forms (10,000 messages); its quick forms run in `make test`.
chaos: $(STAMP)
	CHAOS_LONG=1 $(BIN)/python -m pytest -q -s -m chaos tests/chaos

bench: $(STAMP)
	$(BIN)/python bench/streams.py
	$(BIN)/python bench/cron.py
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/mcp.py
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/tracing.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/recovery.py

compose-check: $(STAMP)
	$(BIN)/docker-compose config -q 2>/dev/null || $(BIN)/compose config -q

clean:
	rm -rf $(VENV) $(UV_HOME) .mypy_cache .pytest_cache .ruff_cache
