"""Prometheus metrics of one bot process, in a registry of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.domain.watch.figures import WatchFigures

__all__ = ["Metrics", "WorkflowGauges"]


class WorkflowGauges(Collector):
    """Per-workflow gauges of the watched figures, from the latest figures handed to `update`.

    The figures are computed where the database may be read (the /metrics route does it before
    rendering); a scrape only reads the snapshot. A workflow without a figure has no sample.
    """

    def __init__(self) -> None:
        self._figures: Sequence[WatchFigures] = ()

    def update(self, figures: Iterable[WatchFigures]) -> None:
        """Replace the snapshot with these figures."""
        self._figures = tuple(figures)

    def collect(self) -> Iterator[Metric]:
        figures = self._figures
        families: tuple[tuple[str, str, Callable[[WatchFigures], float | None]], ...] = (
            (
                "ai_incident_workflow_runs_last_hour",
                "Runs of each watched workflow in the last hour.",
                lambda f: f.runs_last_hour,
            ),
            (
                "ai_incident_workflow_error_rate_10m",
                "Failed runs (errors and timeouts) over runs of the last 10 minutes, 0..1.",
                lambda f: f.error_rate_10m,
            ),
            (
                "ai_incident_workflow_spend_today_usd",
                "Cost in US dollars of each watched workflow's runs since local midnight.",
                lambda f: f.spend_today_usd,
            ),
        )
        for name, documentation, value_of in families:
            family = GaugeMetricFamily(name, documentation, labels=["workflow"])
            for f in figures:
                value = value_of(f)
                if value is not None:
                    family.add_metric([f.workflow], float(value))
            yield family


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
        self.workflows = WorkflowGauges()
        self.registry.register(self.workflows)

    def render(self) -> bytes:
        """Return the text exposition format."""
        return generate_latest(self.registry)
