"""Prometheus metrics of the relay.

Each :class:`RelayMetrics` owns its registry, so several relays (tests, a node
with more than one) never collide in prometheus-client's global one.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RelayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.connections = Gauge("relay_connections", "Open websocket connections", registry=r)
        self.subscriptions = Gauge("relay_subscriptions", "Open subscriptions", registry=r)
        self.events_received = Counter(
            "relay_events_received", "EVENT messages received", registry=r
        )
        self.events_stored = Counter("relay_events_stored", "Events newly stored", registry=r)
        self.events_rejected = Counter(
            "relay_events_rejected", "Events refused, by OK prefix", ["reason"], registry=r
        )
        self.events_broadcast = Counter(
            "relay_events_delivered", "EVENT messages sent to live subscriptions", registry=r
        )
        self.query_seconds = Histogram(
            "relay_query_seconds",
            "Time to answer the stored part of a REQ or COUNT",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.notices = Counter("relay_notices", "NOTICE messages sent for bad input", registry=r)

    def reject(self, message: str) -> None:
        self.events_rejected.labels(reason=message.split(":", 1)[0]).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
