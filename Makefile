# One obvious way to run, test, benchmark. Everything installs itself on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= .timmy
STAMP  := $(VENV)/.installed

.PHONY: run test bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

tests/interop/node_modules/.package-lock.json: tests/interop/package-lock.json
	cd tests/interop && npm ci --no-audit --no-fund --loglevel=error

# Starts a node on the embedded defaults; the first run creates the data dir
# with a dev passphrase file (see the warning it logs).
run: $(STAMP)
	@test -f $(DATA)/node.toml || $(BIN)/timmy init --data $(DATA) --dev-passphrase
	$(BIN)/timmy run --data $(DATA)

test: $(STAMP) tests/interop/node_modules/.package-lock.json
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.run_all

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy --strict nips dvm/jobs.py dvm/agents.py dvm/billing.py dvm/encryption.py node/links.py node/zaps.py node/wallet reputation/model.py reputation/aiwot.py reputation/labels.py reputation/graph.py reputation/scoring.py reputation/ingest.py relay/protocol.py relay/policies.py relay/subscriptions.py relay/settings.py relay/store/base.py

clean:
	rm -rf $(VENV) tests/interop/node_modules bench/out
