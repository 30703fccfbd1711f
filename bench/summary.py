"""Markdown tables of ``bench/out/results.json``, relays side by side with the targets.

``python -m bench.summary [bench/out/results.json]``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RELAYS = ("timmy", "nostr-relay", "rust", "rust-lmdb")


def _relays(bench: dict[str, Any]) -> list[str]:
    present = bench.get("relays", {})
    return [r for r in RELAYS if r in present]


def _missing(entry: dict[str, Any]) -> str | None:
    if "skipped" in entry:
        return "pending"
    if "error" in entry:
        return "error"
    return None


def _n(x: float | int | None, digits: int = 0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def ingest(b: dict[str, Any]) -> str:
    names = _relays(b)
    configs: list[tuple[int, int]] = []
    for name in names:
        for run in b["relays"][name].get("runs", []):
            key = (run["connections"], run["window"])
            if key not in configs:
                configs.append(key)
    rows = []
    for conns, window in configs:
        row = [str(conns), str(window)]
        rates: dict[str, float] = {}
        for name in names:
            entry = b["relays"][name]
            if miss := _missing(entry):
                row.append(miss)
                continue
            run = next(
                (r for r in entry["runs"] if (r["connections"], r["window"]) == (conns, window)),
                None,
            )
            if run is None:
                row.append("-")
                continue
            rates[name] = run["events_per_s"]
            flag = (
                ""
                if run["accepted"] == run["sent"] and not run["connections_dropped_by_relay"]
                else f" ({run['accepted']:,} of {run['sent']:,} sent{'; dropped' if run['connections_dropped_by_relay'] else ''})"
            )
            row.append(f"{_n(run['events_per_s'])}{flag}")
        ratio = (
            rates["timmy"] / rates["nostr-relay"]
            if rates.get("timmy") and rates.get("nostr-relay")
            else None
        )
        row.append(f"{ratio:.1f}x" if ratio else "-")
        rows.append(row)
    return (
        "### Ingest (events/s accepted; target: timmy >= 10,000 and >= 3x nostr-relay)\n\n"
        + _table(["conns", "in flight", *names, "timmy / nostr-relay"], rows)
    )


def queries(b: dict[str, Any]) -> str:
    names = _relays(b)
    conns: list[int] = []
    for name in names:
        for run in b["relays"][name].get("runs", []):
            if run["connections"] not in conns:
                conns.append(run["connections"])
    rows = []
    for c in conns:
        row = [str(c)]
        for name in names:
            entry = b["relays"][name]
            if miss := _missing(entry):
                row.append(miss)
                continue
            run = next((r for r in entry["runs"] if r["connections"] == c), None)
            if run is None:
                row.append("-")
                continue
            lat = run["latency"]
            row.append(
                f"{_n(run['reqs_per_s'])} REQ/s, p50 {lat.get('p50_ms', '-')} / p99 {lat.get('p99_ms', '-')} ms, {run['events_per_req']} ev/REQ"
            )
        rows.append(row)
    return "### Queries (author+kind, limit 50; target: timmy >= 2,000 REQ/s)\n\n" + _table(
        ["conns", *names], rows
    )


def large_query(b: dict[str, Any]) -> str:
    rows = []
    for name in _relays(b):
        entry = b["relays"][name]
        if miss := _missing(entry):
            rows.append([name, miss, "", "", "", ""])
            continue
        lat = entry["latency"]
        rows.append(
            [
                name,
                _n(entry["store"]["events_stored"]),
                str(lat.get("p50_ms")),
                str(lat.get("p99_ms")),
                str(entry["events_per_req"]),
                _n(entry["reqs_per_s"]),
            ]
        )
    return (
        "### Large store author+kind latency (1 connection; target: timmy p50 <= 2 ms on 1M events)\n\n"
        + _table(["relay", "events in store", "p50 ms", "p99 ms", "events/REQ", "REQ/s"], rows)
    )


def fanout(b: dict[str, Any]) -> str:
    rows = []
    for name in _relays(b):
        entry = b["relays"][name]
        if miss := _missing(entry):
            rows.append([name, miss, "", "", "", ""])
            continue
        lat = entry["latency"]
        rows.append(
            [
                name,
                _n(entry["subscriptions"]),
                str(lat.get("p50_ms")),
                str(lat.get("p99_ms")),
                str(lat.get("max_ms")),
                _n(entry["missing_deliveries"]),
            ]
        )
    return (
        "### Fan-out (delivery latency from publish; target: timmy p99 <= 100 ms to 1,000 subs)\n\n"
        + _table(["relay", "subscriptions", "p50 ms", "p99 ms", "max ms", "missing"], rows)
    )


def memory(b: dict[str, Any]) -> str:
    rows = []
    for name in _relays(b):
        entry = b["relays"][name]
        if miss := _missing(entry):
            rows.append([name, miss, "", "", "", "", ""])
            continue
        loaded = entry["with_connections"]
        split = (
            f" ({_n(loaded['rss_anon_mb'], 1)} + {_n(loaded['rss_file_mb'], 1)})"
            if "rss_anon_mb" in loaded
            else ""
        )
        rows.append(
            [
                name,
                _n(entry["store"]["events_stored"]),
                _n(entry["before_connections"]["rss_mb"], 1),
                _n(loaded["rss_mb"], 1) + split,
                _n(loaded.get("pss_mb"), 1),
                _n(entry.get("private_kb_per_connection"), 1),
                _n(entry["subscriptions"]),
            ]
        )
    return (
        "### Memory (RSS, relay and children; target: timmy <= 300 MB with 1M events and 1,000 connections)\n\n"
        + _table(
            [
                "relay",
                "events in store",
                "RSS idle MB",
                "RSS with connections MB (private + file pages)",
                "PSS with connections MB",
                "private KB per connection",
                "subscriptions",
            ],
            rows,
        )
    )


RENDERERS = {
    "ingest": ingest,
    "queries": queries,
    "large_query": large_query,
    "fanout": fanout,
    "memory": memory,
}


def _jobs(bench: dict[str, Any]) -> str:
    lat = bench["latency"]
    rows = [["1 (one at a time)", "-", _n(lat["p50_ms"], 2), _n(lat["p99_ms"], 2)]]
    rows += [
        [str(t["inflight"]), _n(t["jobs_per_s"], 1), _n(t["p50_ms"], 2), _n(t["p99_ms"], 2)]
        for t in bench["throughput"]
    ]
    head = ["jobs in flight", "jobs/s", "round trip p50 ms", "p99 ms"]
    return "### jobs (target: p50 <= 10 ms, p99 <= 50 ms, >= 300 jobs/s)\n\n" + _table(head, rows)


def _auction(bench: dict[str, Any]) -> str:
    rows = [
        [name, str(len(r["rounds"])), _n(r["award_ms_median"], 1), _n(r["award_ms_max"], 1),
         _n(r["winner_ms_median"], 1), "yes" if r["all_correct"] else "NO"]
        for name, r in bench["shared"].items()
    ]
    head = ["shared relay", "auctions", "award ms (median)", "award ms (max)", "winner next step ms",
            "all awards correct"]
    return "### auction, 3 nodes x 5 agents (target: award <= 100 ms after reveal_until)\n\n" + _table(
        head, rows
    )


def _payments(bench: dict[str, Any]) -> str:
    s, i = bench["settlement_to_processing"], bench["dev_invoices"]
    rows = [[str(s["jobs"]), _n(s["p50_ms"], 1), _n(s["p99_ms"], 1), _n(i["per_second"], 1)]]
    head = ["paid jobs", "settlement -> processing p50 ms", "p99 ms", "dev invoices/s"]
    return "### payments (target: settlement -> processing <= 100 ms)\n\n" + _table(head, rows)


def _reputation(bench: dict[str, Any]) -> str:
    inc = bench["incremental"]["follow_list_100"]
    score = bench.get("score_agent", {})
    rows = [
        ["personalized PageRank, cold", _n(bench["personalized_pagerank"]["median_ms"], 1), "<= 1000"],
        ["incremental (new follow list), warm", _n(inc["median_ms"], 1), "<= 100"],
        ["score one agent, 10,000 attestations", _n(score.get("median_ms"), 1), "<= 20"],
        ["global PageRank", _n(bench["global_pagerank"]["median_ms"], 1), "-"],
    ]
    head = ["reputation (" + f"{bench['graph']['keys']:,} keys, {bench['graph']['edges']:,} edges)", "ms", "target"]
    return "### reputation\n\n" + _table(head, rows)


def _web(bench: dict[str, Any]) -> str:
    rows = [[path, _n(v["p50_ms"], 2), _n(v["p99_ms"], 2)] for path, v in bench["ttfb"].items()]
    rows.append(["login round trip (nonce, sign, POST /login)", _n(bench["login"]["p50_ms"], 2),
                 _n(bench["login"]["p99_ms"], 2)])
    head = ["page", "p50 ms", "p99 ms"]
    return "### web (targets: time to first byte p50 <= 20 ms; login <= 100 ms)\n\n" + _table(head, rows)


def _search(bench: dict[str, Any]) -> str:
    rows = [[f"this index: {name}", _n(v["p50_ms"], 2), _n(v["p99_ms"], 2), _n(v["recall_at_10"], 4)]
            for name, v in bench["search"].items()]
    base = bench["baseline_sqlite_vec"]["vec0_float_brute_force_k10"]
    rows.append(["sqlite-vec vec0 float brute force", _n(base["p50_ms"], 2), _n(base["p99_ms"], 2),
                 _n(base["recall_at_10"], 4)])
    head = [f"search, {bench['corpus']['texts']:,} vectors, k = 10", "p50 ms", "p99 ms", "recall@10"]
    return "### search (target: p50 <= 10 ms, recall@10 >= 0.95)\n\n" + _table(head, rows)


def _voice(bench: dict[str, Any]) -> str:
    stt, tts = bench["stt"], bench["tts"]
    rows = [["Whisper load, first (s)", _n(stt["load"]["first_s"], 2), "<= 1.5"]]
    rows += [[f"Whisper, {stt['utterance_s']:.1f} s utterance, {name} (p50 ms)", _n(v["p50_ms"], 0),
              "<= 500" if "default" in name else "-"] for name, v in stt["utterance"].items()]
    for name, v in tts.items():
        if isinstance(v, dict) and "real_time_factor" in v:
            rows.append([f"Kokoro, {name}: real-time factor", _n(v["real_time_factor"], 2),
                         ">= 5" if "default" in name else "-"])
            rows.append([f"Kokoro, {name}: first audio (ms)", _n(v["first_audio_ms"], 0),
                         "<= 400" if "default" in name else "-"])
    return "### voice\n\n" + _table(["measure", "value", "target"], rows)


NODE_RENDERERS = {
    "jobs": _jobs, "auction": _auction, "payments": _payments, "reputation": _reputation, "web": _web,
    "search": _search, "voice": _voice,
}


def render(results: dict[str, Any]) -> str:
    parts = []
    for name, bench in results.get("benchmarks", {}).items():
        if name in NODE_RENDERERS and "error" not in bench:
            parts.append(NODE_RENDERERS[name](bench))
            continue
        if "relays" not in bench:
            parts.append(f"### {name}\n\n{bench.get('error', 'no result')}\n")
            continue
        parts.append(RENDERERS[name](bench))
    return "\n".join(parts)


def main() -> None:
    path = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).resolve().parent / "out" / "results.json"
    )
    print(render(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
