"""Wire formats of the alert webhooks and their translation into domain notifications."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)

from bot.config import Source
from bot.domain.alerts import AI_CONTEXT_KEYS, AlertIn, AlertStatus, Link, Notification
from bot.domain.severity import Evidence, Signal, parse_duration

__all__ = [
    "AgentRef",
    "AiContextIn",
    "AlertmanagerPayload",
    "GenericAlert",
    "from_alertmanager",
    "from_generic",
]

_TRUE = {"true", "yes", "1", "on"}
# An alert's times lie in this range; Alertmanager and Grafana send 0001-01-01T00:00:00Z for
# "not ended", and nothing real happened before 1970 or will be reported from after 2200.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _event_time(value: datetime | None) -> datetime | None:
    """Read a time without a UTC offset as UTC; one outside 1970..2200 as not given."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=UTC)
    # compared before converting: 9999-12-31T23:59:59-05:00 has no UTC datetime to convert to
    if not EARLIEST <= value < LATEST:
        return None
    return value.astimezone(UTC)


EventTime = Annotated[datetime | None, AfterValidator(_event_time)]
"""A timestamp, startsAt or endsAt: UTC when the offset is missing, None when out of range."""


def _not_negative(value: float | None) -> float | None:
    # NaN passes: Prometheus renders a value it could not compute (0/0) as NaN, and it is kept
    if value is not None and value < 0:
        raise ValueError("must not be negative")
    return value


Measure = Annotated[
    float | None,
    AfterValidator(_not_negative),
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}]}),
]
"""A non-negative measurement, or NaN/Infinity when the sender could not compute a finite one."""


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class AmAlert(_Wire):
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: EventTime = None
    endsAt: EventTime = None
    generatorURL: str | None = Field(default=None, max_length=4096)
    fingerprint: str | None = Field(default=None, max_length=200)
    silenceURL: str | None = None
    dashboardURL: str | None = None
    panelURL: str | None = None
    values: dict[str, Any] | None = None


class AlertmanagerPayload(_Wire):
    """Alertmanager webhook v4, or Grafana unified alerting v1 (a superset)."""

    version: str = Field(pattern=r"^(4|1)$")
    groupKey: str = Field(min_length=1, max_length=10000)
    status: Literal["firing", "resolved"]
    receiver: str = Field(min_length=1, max_length=500)
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str | None = None
    alerts: list[AmAlert] = Field(min_length=1)
    truncatedAlerts: int = Field(default=0, ge=0)
    notification_reason: str | None = None
    routeLabels: dict[str, str] | None = None
    title: str | None = None
    message: str | None = None
    orgId: int | None = None


class GenericSignal(_Wire):
    kind: str = Field(min_length=1, max_length=100)
    value: float | None = None
    threshold: float | None = None
    baseline: float | None = None
    stddev: Measure = None
    window: str | None = None

    @field_validator("window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


class AgentRef(_Wire):
    id: str | None = Field(default=None, max_length=200)
    version: str | None = Field(default=None, max_length=100)


class LinkIn(_Wire):
    title: str = Field(default="link", max_length=200)
    url: str = Field(min_length=1, max_length=4096)


class AiContextIn(_Wire):
    """The AI context of §7 an alert or a handoff may carry (OpenTelemetry GenAI names too)."""

    request_id: str | None = Field(default=None, max_length=200)
    trace_id: str | None = Field(default=None, max_length=200)
    prompt_version: str | None = Field(default=None, max_length=200)
    provider_name: str | None = Field(
        default=None,
        max_length=200,
        validation_alias=AliasChoices("gen_ai.provider.name", "provider_name"),
    )
    request_model: str | None = Field(
        default=None,
        max_length=200,
        validation_alias=AliasChoices("gen_ai.request.model", "request_model"),
    )
    response_model: str | None = Field(
        default=None,
        max_length=200,
        validation_alias=AliasChoices("gen_ai.response.model", "response_model"),
    )
    input_tokens: int | None = Field(
        default=None,
        ge=0,
        validation_alias=AliasChoices("gen_ai.usage.input_tokens", "input_tokens"),
    )
    output_tokens: int | None = Field(
        default=None,
        ge=0,
        validation_alias=AliasChoices("gen_ai.usage.output_tokens", "output_tokens"),
    )
    cost_usd: Measure = None
    latency_ms: Measure = None
    agent: AgentRef | None = None

    def ai_context_for(self, workflow: str | None, confidence: float | None) -> dict[str, Any]:
        """Return the §7 fields under their canonical names, leaving out what is absent.

        `confidence` is the subclass's own field: a handoff validates it against its reason.
        """
        ctx: dict[str, Any] = {
            "request_id": self.request_id,
            "trace_id": self.trace_id,
            "workflow": workflow,
            "agent.id": self.agent.id if self.agent else None,
            "agent.version": self.agent.version if self.agent else None,
            "prompt_version": self.prompt_version,
            "gen_ai.provider.name": self.provider_name,
            "gen_ai.request.model": self.request_model,
            "gen_ai.response.model": self.response_model,
            "gen_ai.usage.input_tokens": self.input_tokens,
            "gen_ai.usage.output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "latency_ms": self.latency_ms,
            "confidence": confidence,
        }
        return {k: v for k, v in ctx.items() if v is not None}


class GenericAlert(AiContextIn):
    """The generic alert of §4."""

    dedup_key: str = Field(min_length=1, max_length=200)
    status: Literal["firing", "resolved"]
    title: str = Field(min_length=1, max_length=500)
    description: str | None = Field(default=None, max_length=50_000)
    workflow: str | None = Field(default=None, max_length=200)
    source: str | None = Field(default=None, max_length=100)
    severity: str | None = Field(default=None, pattern=r"(?i)^(P[123]|critical|warning|info)$")
    signal: GenericSignal | None = None
    customer_facing: bool = False
    delivered_externally: bool = False
    acted_upon: bool = False
    links: list[LinkIn | str] = Field(default_factory=list, max_length=50)
    labels: dict[str, str] = Field(default_factory=dict)
    timestamp: EventTime = None
    confidence: float | None = Field(default=None, ge=0, le=1)

    def ai_context(self) -> dict[str, Any]:
        """Return the §7 fields under their canonical names, leaving out what is absent."""
        return self.ai_context_for(self.workflow, self.confidence)


def _flag(labels: dict[str, str], name: str) -> bool:
    return labels.get(name, "").strip().lower() in _TRUE


def _float(text: Any) -> float | None:
    try:
        return float(str(text).strip().rstrip("%"))
    except (TypeError, ValueError):
        return None


def _am_signal(alert: AmAlert, labels: dict[str, str]) -> Signal | None:
    kind = labels.get("signal") or labels.get("signal_kind")
    if not kind:
        return None
    ann = alert.annotations
    value = _float(ann["value"]) if "value" in ann else None
    ref = labels.get("signal_ref")
    if value is None and ref and alert.values and ref in alert.values:
        value = _float(alert.values[ref])
    window = None
    if w := ann.get("window") or labels.get("window"):
        try:
            window = parse_duration(w)
        except ValueError:
            window = None
    return Signal(
        kind=kind,
        value=value,
        threshold=_float(ann.get("threshold")),
        baseline=_float(ann.get("baseline")),
        stddev=_float(ann.get("stddev")),
        window=window,
    )


def _am_ai_context(labels: dict[str, str], annotations: dict[str, str]) -> dict[str, Any]:
    ctx: dict[str, Any] = {}
    for key in AI_CONTEXT_KEYS:
        # Prometheus label names cannot hold dots; accept the underscore spelling too
        for name in (key, key.replace(".", "_")):
            if name in annotations:
                ctx[key] = annotations[name]
            elif name in labels:
                ctx[key] = labels[name]
    return ctx


def _workflow_of(labels: dict[str, str], source: Source) -> str | None:
    for name in source.workflow_labels:
        if labels.get(name):
            return labels[name]
    return None


def from_alertmanager(
    payload: AlertmanagerPayload, *, source_name: str, source: Source
) -> Notification:
    """Translate an Alertmanager or Grafana notification."""
    alerts: list[AlertIn] = []
    for i, am in enumerate(payload.alerts):
        labels = {**payload.commonLabels, **am.labels}
        annotations = {**payload.commonAnnotations, **am.annotations}
        fingerprint = am.fingerprint or f"{payload.groupKey}#{sorted(labels.items())}#{i}"
        links = [
            Link(title, url)
            for title, url in (
                ("source", am.generatorURL),
                ("runbook", annotations.get("runbook_url")),
                ("dashboard", am.dashboardURL or annotations.get("dashboard_url")),
                ("panel", am.panelURL),
                ("silence", am.silenceURL),
            )
            if url
        ]
        title = (
            annotations.get("summary")
            or labels.get("alertname")
            or payload.commonAnnotations.get("summary")
            or "alert"
        )
        evidence = Evidence(
            signal=_am_signal(am, labels),
            delivered_externally=_flag(labels, "delivered_externally"),
            acted_upon=_flag(labels, "acted_upon"),
            customer_facing=_flag(labels, "customer_facing"),
            hint=None,
            hint_trusted=source.trusted_severity_hint,
            label_severity=labels.get("severity"),
            firing_since=am.startsAt,
            trusted_timing=source.trusted_timing,
            reported_by=source_name,
        )
        alerts.append(
            AlertIn(
                fingerprint=fingerprint,
                status=AlertStatus(am.status),
                title=title[:500],
                description=annotations.get("description"),
                labels=labels,
                annotations=annotations,
                links=tuple(links),
                values=am.values or {},
                starts_at=am.startsAt,
                ends_at=am.endsAt,
                generator_url=am.generatorURL or None,
                workflow=_workflow_of(labels, source),
                evidence=evidence,
                ai_context=_am_ai_context(labels, annotations),
            )
        )
    group_title = (
        payload.commonAnnotations.get("summary")
        or payload.groupLabels.get("alertname")
        or payload.commonLabels.get("alertname")
        or alerts[0].title
    )
    return Notification(
        source=source_name,
        group_key=json.dumps([payload.receiver, payload.groupKey]),
        title=group_title[:500],
        alerts=tuple(alerts),
        workflow=_workflow_of(payload.commonLabels, source),
        reason=payload.notification_reason,
        truncated_alerts=payload.truncatedAlerts,
        external_url=payload.externalURL,
    )


def from_generic(body: GenericAlert, *, source_name: str, source: Source) -> Notification:
    """Translate a generic alert; its dedup_key is both group and fingerprint."""
    signal = None
    if body.signal is not None:
        s = body.signal
        signal = Signal(
            kind=s.kind,
            value=s.value,
            threshold=s.threshold,
            baseline=s.baseline,
            stddev=s.stddev,
            window=parse_duration(s.window) if s.window else None,
        )
    links = tuple(
        Link("link", item) if isinstance(item, str) else Link(item.title, item.url)
        for item in body.links
    )
    workflow = body.workflow or _workflow_of(body.labels, source)
    evidence = Evidence(
        signal=signal,
        delivered_externally=body.delivered_externally,
        acted_upon=body.acted_upon,
        customer_facing=body.customer_facing,
        hint=body.severity,
        hint_trusted=source.trusted_severity_hint,
        label_severity=body.labels.get("severity"),
        firing_since=body.timestamp,
        trusted_timing=source.trusted_timing,
        reported_by=source_name,
    )
    labels = dict(body.labels)
    if body.source:
        labels.setdefault("source", body.source)
    alert = AlertIn(
        fingerprint=body.dedup_key,
        status=AlertStatus(body.status),
        title=body.title,
        description=body.description,
        labels=labels,
        links=links,
        starts_at=body.timestamp,
        workflow=workflow,
        evidence=evidence,
        ai_context=body.ai_context(),
    )
    return Notification(
        source=source_name,
        group_key=body.dedup_key,
        title=body.title,
        alerts=(alert,),
        workflow=workflow,
    )
