# Two commands a newcomer needs: `make run` and `make test`. Everything else is set up by them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench mutants clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The console's browser tests (tests/browser/) drive Debian's Chromium: Playwright's own browser
# download cannot work here. Installed when missing and we are root (as CI is); otherwise those
# tests say why they skip, and under CI=true they fail.
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian's chromium for the console's browser tests"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; } \
			|| echo "note: could not install chromium; the browser tests will skip (and fail under CI=true)"; \
	else \
		echo "note: $(CHROMIUM) is missing and only root can install it (apt-get install chromium);" \
			"the browser tests will skip (and fail under CI=true)"; \
	fi

run: $(STAMP)
	$(BIN)/secledger up

test: $(STAMP) $(CHROMIUM)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/ledger_apply.py
	$(BIN)/python bench/consensus_sim.py
	$(BIN)/python bench/cluster.py

# Mutation testing of the critical modules (docs/TESTING.md); not part of `make test`.
# One module: make mutants MODULE=consensus/certificate.py
mutants: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,mutants]'
	$(BIN)/python tools/mutants.py $(if $(MODULE),--module $(MODULE))

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
