# Two commands set everything up on a fresh machine (Python 3.11+ and make):
#   make serve   – install into .venv and serve FHIR R4 at http://127.0.0.1:8080/fhir with demo data (SQLite)
#   make test    – install with test extras into .venv and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: serve test install install-test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"

serve: install
	$(BIN)/cares-fhir serve --demo

# the interop proofs (tests/interop) need the npm fhirclient package and Debian's chromium (driven by Playwright's
# Python package; never `playwright install`): npm ci when node_modules is missing or older than the lock file,
# apt-get only when /usr/bin/chromium is missing
INTEROP = tests/interop
.PHONY: interop-deps
$(INTEROP)/node_modules/.package-lock.json: $(INTEROP)/package.json $(INTEROP)/package-lock.json
	npm ci --prefix $(INTEROP)
	touch $@

interop-deps: $(INTEROP)/node_modules/.package-lock.json
	@test -x /usr/bin/chromium || { apt-get update -qq && apt-get install -y -qq chromium; }

test: install-test interop-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: install-test
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/run_fhirload.py

clean:
	rm -rf $(VENV) build *.egg-info
