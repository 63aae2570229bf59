# som_pipeline — two commands do everything on a fresh machine:
#   make run    set up, generate the demo, materialize the whole graph through Dagster, let the demo's warehouse
#               floor work the released waves (scans, receipts, a count), run again, let the carriers report
#               three days of tracking events, run again (invoices), let the bank report the customers'
#               payments and a channel payout and the customers their returns, run again (matching,
#               receivables, returns, closure and the reconciliation report), print a summary
#   make test   the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export SOM_HOME ?= $(CURDIR)/data
STAMP := $(VENV)/.installed

.PHONY: run test dev install demo lint bench clean docs

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/som demo
	$(BIN)/som run
	$(BIN)/som floor
	$(BIN)/som run
	$(BIN)/som carriers
	$(BIN)/som run
	$(BIN)/som bank
	$(BIN)/som returns
	$(BIN)/som run
	$(BIN)/som settle
	$(BIN)/som run
	$(BIN)/som disputes
	$(BIN)/som run

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

dev: $(STAMP)
	DAGSTER_HOME=$(SOM_HOME)/dagster_home $(BIN)/som init-home
	DAGSTER_HOME=$(SOM_HOME)/dagster_home $(BIN)/dagster dev -w workspace.yaml

lint: $(STAMP)
	$(BIN)/ruff check .

docs: $(STAMP)
	$(BIN)/som docs

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(SOM_HOME)
