"""Prometheus metrics of one bot process, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]


class Metrics:
    """Counters and latencies the /metrics endpoint exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ai_incident_webhook_requests",
            "Webhook requests by endpoint and HTTP status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.alerts = Counter(
            "ai_incident_alerts_ingested",
            "Alerts accepted by endpoint and outcome (new, changed, duplicate).",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        self.incidents_opened = Counter(
            "ai_incident_incidents_opened", "Incidents opened from alerts.", registry=self.registry
        )
        self.ingest_latency = Histogram(
            "ai_incident_ingest_seconds",
            "Time from request received to durable answer.",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.ingest_batch = Histogram(
            "ai_incident_ingest_batch_size",
            "Notifications committed per database transaction.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.outbox_pending = Gauge(
            "ai_incident_outbox_pending", "Side effects not yet delivered.", registry=self.registry
        )
        self.open_incidents = Gauge(
            "ai_incident_open_incidents", "Incidents not resolved.", registry=self.registry
        )
        self.handoffs = Counter(
            "ai_incident_handoffs_received",
            "Handoffs received by tier and outcome (new, duplicate).",
            ["tier", "outcome"],
            registry=self.registry,
        )

        self.runs = Counter(
            "ai_incident_runs_ingested",
            "Workflow runs received on /webhooks/runs by outcome (new, duplicate, rejected).",
            ["outcome"],
            registry=self.registry,
        )
        self.otlp_points = Counter(
            "ai_incident_otlp_points",
            "OTLP metric data points by outcome (kept, unknown_metric: not watched, rejected).",
            ["outcome"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        """Return the text exposition format."""
        return generate_latest(self.registry)
