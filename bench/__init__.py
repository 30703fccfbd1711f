"""Relay benchmarks: our relay, nostr-relay and rust-nostr's LocalRelay, side by side.

Every benchmark is a script that prints one JSON object (``python -m bench.ingest``);
``python -m bench.run_all`` runs them all into ``bench/out/results.json``. The relays
run as subprocesses on 127.0.0.1 (``bench.relays``) and are driven by one load
generator (``bench.loadgen``). See ``docs/benchmarks.md`` for results.
"""
