"""docs/grafana-dashboard.json only graphs metrics the node really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from dvm.metrics import JobMetrics
from relay.metrics import RelayMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"


def test_every_metric_in_the_dashboard_exists():
    registry = CollectorRegistry()
    JobMetrics(registry)
    RelayMetrics(registry)
    exported = generate_latest(registry).decode()
    names = set(re.findall(r"^# TYPE (\w+) ", exported, re.M))
    families = names | {n + suffix for n in names for suffix in ("_total", "_bucket", "_count", "_sum")}
    dashboard = json.loads(DASHBOARD.read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b((?:dvm|relay)_\w+)", target["expr"])
    }
    assert used, "the dashboard graphs something"
    assert used <= families, f"not exported: {sorted(used - families)}"
