VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: run test lint bench clean browser check-wheel docs

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

## run: create .venv, install, seed a small demo on ./ductape.db, then `ductape serve` (engine, API, dashboard);
## it prints the dashboard's URL and a fresh API key
run: $(VENV)/.installed
	$(VENV)/bin/ductape demo --serve

## browser: Debian's Chromium for the dashboard's browser tests (Playwright never downloads a browser)
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium (apt-get) for the browser tests in tests/e2e"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "note: tests/e2e need Chromium at /usr/bin/chromium; install it: sudo apt-get install chromium"; \
	  fi; \
	fi

## test: create .venv with dev extras, run ruff, mypy, the documentation build (warnings are errors) and pytest
test: $(VENV)/.installed browser
	$(VENV)/bin/ruff check src tests bench scripts examples docs/hooks
	$(VENV)/bin/ruff format --check src tests bench scripts examples docs/hooks
	$(VENV)/bin/mypy
	$(MAKE) docs
	$(VENV)/bin/pytest

## docs: build the documentation site (mkdocs.yml, docs/) into site/ with warnings as errors; the CLI and REST
## references are generated from the code by docs/hooks/reference.py. `mkdocs serve` previews it.
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

## check-wheel: build the sdist and wheel, install the wheel in a fresh venv without extras (README quickstart,
## `ductape --help`, one-line messages for missing extras), then with [api] (`ductape serve`: /, /openapi.json)
check-wheel: $(VENV)/.installed
	$(PY) scripts/check_wheel.py

bench: $(VENV)/.installed
	$(PY) bench/throughput.py

clean:
	rm -rf $(VENV) site ductape.db ductape.db-wal ductape.db-shm
