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

run: $(STAMP)
	$(BIN)/secledger up

test: $(STAMP)
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
