# payouts: `make run` serves the demo on 127.0.0.1:5000, `make test` runs the tests.
# Both set everything up on a fresh clone; nothing here assumes a pre-installed package.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test install browser translations bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP) translations

translations: $(STAMP)
	$(BIN)/pybabel compile --use-fuzzy -d payouts/translations -D messages >/dev/null

run: install
	$(BIN)/payouts db upgrade
	$(BIN)/payouts demo load
	$(BIN)/payouts run --host $(HOST) --port $(PORT)

# The end-to-end tests drive Debian's Chromium; no test tool ever downloads a browser.
browser:
	@dpkg -s chromium fonts-noto-cjk >/dev/null 2>&1 || { out=$$( (apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk) 2>&1 ) \
	  || { printf '%s\n' "$$out" >&2; echo "installing chromium failed" >&2; exit 1; }; }

test: install browser
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/import_losses.py
	$(BIN)/python bench/allocate.py
	$(BIN)/python bench/disburse.py
	$(BIN)/python bench/portal_load.py

clean:
	rm -rf $(VENV) instance .pytest_cache .hypothesis test-output
