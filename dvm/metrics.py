"""Prometheus metrics of the job engine: jobs by kind and state, latency, auctions."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from dvm.jobs import State

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class JobMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("dvm_requests", "Job requests taken in, by kind", ["kind"], registry=r)
        self.transitions = Counter(
            "dvm_job_transitions", "Jobs entering a state, by kind and state", ["kind", "state"], registry=r
        )
        self.latency = Histogram(
            "dvm_job_seconds",
            "From a request's intake to its final state, by kind and final state",
            ["kind", "state"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.invoices = Counter("dvm_invoices", "Invoices quoted for jobs, by agent", ["agent"], registry=r)
        self.invoiced_msat = Counter(
            "dvm_invoiced_msat", "Millisats quoted for jobs, by agent", ["agent"], registry=r
        )
        self.paid_msat = Counter("dvm_paid_msat", "Millisats received for jobs, by agent", ["agent"], registry=r)
        self.auctions = Counter(
            "dvm_auctions", "Federated auctions entered, by outcome", ["outcome"], registry=r
        )

    def received(self, kind: int) -> None:
        self.requests.labels(kind=str(kind)).inc()

    def moved(self, kind: int, state: State, elapsed: float) -> None:
        self.transitions.labels(kind=str(kind), state=state.value).inc()
        if state.is_final and state is not State.DECLINED:
            self.latency.labels(kind=str(kind), state=state.value).observe(elapsed)

    def auction(self, outcome: str) -> None:
        self.auctions.labels(outcome=outcome).inc()

    def invoice(self, agent: str, msat: int) -> None:
        self.invoices.labels(agent=agent).inc()
        self.invoiced_msat.labels(agent=agent).inc(msat)

    def paid(self, agent: str, msat: int) -> None:
        self.paid_msat.labels(agent=agent).inc(msat)
