"""The alert webhooks end to end over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from bot.domain.incidents import IncidentState
from storage.models import AlertRow, IncidentRow, JournalRow, OutboxRow
from tests.conftest import AUTH, Bot, make_bot, payload


def incidents(bot: Bot) -> list[IncidentRow]:
    with Session(bot.container.engine) as s:
        return list(s.exec(select(IncidentRow).order_by(IncidentRow.id)).all())


def alerts(bot: Bot, incident_id: int) -> list[AlertRow]:
    with Session(bot.container.engine) as s:
        return list(s.exec(select(AlertRow).where(AlertRow.incident_id == incident_id)).all())


def journal(bot: Bot, incident_id: int) -> list[str]:
    with Session(bot.container.engine) as s:
        rows = s.exec(
            select(JournalRow).where(JournalRow.incident_id == incident_id).order_by(JournalRow.id)
        ).all()
        return [r.text for r in rows]


def count(bot: Bot, table: Any) -> int:
    with Session(bot.container.engine) as s:
        return int(s.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_alertmanager_firing_opens_one_p1_incident(bot: Bot) -> None:
    r = bot.post("/webhooks/alertmanager", payload("alertmanager_v4_firing.json"))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["incident"] == "INC-1" and body["opened"] is True and body["alerts_new"] == 2
    [inc] = incidents(bot)
    assert inc.severity == "P1"
    assert inc.workflow == "email-summarizer"
    assert inc.category == "internal"
    assert inc.state == IncidentState.TRIGGERED
    assert inc.severity_reasons and "critical" in json.dumps(inc.severity_reasons)
    stored = {a.fingerprint: a for a in alerts(bot, inc.id or 0)}
    assert set(stored) == {"f404ecabc8dd5cd7", "f8f08d4e32c61a9d"}
    a2 = stored["f8f08d4e32c61a9d"]
    # +01:00 offset normalised to UTC; the zero endsAt means "not ended"
    assert a2.starts_at is not None and a2.starts_at.hour == 7 and a2.starts_at.minute == 24
    assert a2.ends_at is None
    assert any(link["title"] == "runbook" for link in stored["f404ecabc8dd5cd7"].links)
    assert inc.detected_at == min(a.starts_at for a in stored.values() if a.starts_at)


def test_duplicate_notification_changes_nothing(bot: Bot) -> None:
    bot.container.stop_delivery()  # delivery writes rows of its own (a filed ticket is journalled)
    body = payload("alertmanager_v4_firing.json")
    assert bot.post("/webhooks/alertmanager", body).status_code == 202
    before = (count(bot, AlertRow), count(bot, JournalRow), count(bot, OutboxRow))
    r = bot.post("/webhooks/alertmanager", body)
    assert r.status_code == 200 and r.json()["duplicate"] is True
    assert (count(bot, AlertRow), count(bot, JournalRow), count(bot, OutboxRow)) == before
    assert len(incidents(bot)) == 1


def test_new_alert_joins_open_group_and_all_resolved_resolves(bot: Bot) -> None:
    firing = payload("alertmanager_v4_firing.json")
    bot.post("/webhooks/alertmanager", firing)
    joined = copy.deepcopy(firing)
    extra = copy.deepcopy(firing["alerts"][0])
    extra["fingerprint"] = "aaaa000011112222"
    extra["labels"]["instance"] = "worker-3"
    joined["alerts"].append(extra)
    r = bot.post("/webhooks/alertmanager", joined)
    assert r.status_code == 202 and r.json()["alerts_new"] == 1 and r.json()["incident"] == "INC-1"
    [inc] = incidents(bot)
    assert len(alerts(bot, inc.id or 0)) == 3
    assert any("Alert joined" in t and "aaaa000011112222" in t for t in journal(bot, inc.id or 0))

    resolved = payload("alertmanager_v4_resolved.json")
    r = bot.post("/webhooks/alertmanager", resolved)
    assert r.status_code == 202 and r.json()["resolved"] is False  # worker-3 still firing
    extra_resolved = copy.deepcopy(extra)
    extra_resolved["status"] = "resolved"
    extra_resolved["endsAt"] = "2026-11-20T09:03:00Z"
    resolved["alerts"].append(extra_resolved)
    r = bot.post("/webhooks/alertmanager", resolved)
    assert r.status_code == 202 and r.json()["resolved"] is True
    [inc] = incidents(bot)
    assert inc.state == "resolved" and inc.resolved_by == "source:default"
    assert inc.resolved_at is not None
    assert any("resolved at the source" in t for t in journal(bot, inc.id or 0))
    # the group is closed: the same group firing again opens a new incident
    r = bot.post("/webhooks/alertmanager", firing)
    assert r.json()["incident"] == "INC-2" and r.json()["opened"] is True


def test_resolved_for_unknown_group_is_accepted_and_stores_nothing(bot: Bot) -> None:
    r = bot.post("/webhooks/alertmanager", payload("alertmanager_v4_resolved.json"))
    assert r.status_code == 200 and r.json()["incident"] is None
    assert incidents(bot) == []


def test_workflow_configured_to_only_note_source_resolution(bot: Bot) -> None:
    firing = payload("alertmanager_v4_firing.json")
    for a in [firing, *firing["alerts"]]:
        key = "commonLabels" if "commonLabels" in a else "labels"
        a[key]["workflow"] = "support-chatbot"
    bot.post("/webhooks/alertmanager", firing)
    resolved = copy.deepcopy(firing)
    resolved["status"] = "resolved"
    for a in resolved["alerts"]:
        a["status"] = "resolved"
        a["endsAt"] = "2026-11-20T09:02:00Z"
    r = bot.post("/webhooks/alertmanager", resolved)
    assert r.status_code == 202 and r.json()["resolved"] is False
    [inc] = incidents(bot)
    assert inc.state == "triggered"
    assert any("stays open" in t for t in journal(bot, inc.id or 0))


def test_grafana_payload_with_hmac(bot: Bot) -> None:
    body = json.dumps(payload("grafana_unified_firing.json")).encode()
    secret = "change-me-grafana"  # the example policy's default for GRAFANA_WEBHOOK_SECRET
    stamp = str(int(bot.clock.now.timestamp()))
    import time

    stamp = str(int(time.time()))
    sig = hmac.new(secret.encode(), f"{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Grafana-Alerting-Signature": sig,
        "X-Grafana-Alerting-Signature-Timestamp": stamp,
    }
    r = bot.client.post("/webhooks/alertmanager", content=body, headers=headers)
    assert r.status_code == 202, r.text
    [inc] = incidents(bot)
    assert inc.source == "grafana" and inc.workflow == "proposal-writer"
    [alert] = alerts(bot, inc.id or 0)
    assert alert.values == {"B": 171.2, "C": 1}
    bad = {**headers, "X-Grafana-Alerting-Signature": "0" * 64}
    assert bot.client.post("/webhooks/alertmanager", content=body, headers=bad).status_code == 401


def test_generic_alert_carries_signal_and_ai_context(bot: Bot) -> None:
    body = {
        "dedup_key": "chatbot-harm-1",
        "status": "firing",
        "title": "Chatbot sent wrong refund policy",
        "description": "Customer was told refunds take 90 days",
        "workflow": "support-chatbot",
        "source": "llm-observability",
        "signal": {"kind": "harmful_output", "value": 1},
        "delivered_externally": True,
        "request_id": "req-123",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "agent": {"id": "support-bot", "version": "2.3.1"},
        "prompt_version": "refunds-v7",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 812,
        "gen_ai.usage.output_tokens": 230,
        "cost_usd": 0.0123,
        "latency_ms": 2100,
        "confidence": 0.62,
        "links": [{"title": "trace", "url": "https://traces.example.com/t/4bf9"}],
    }
    r = bot.post("/webhooks/alerts", body)
    assert r.status_code == 202, r.text
    [inc] = incidents(bot)
    assert inc.severity == "P1" and inc.category == "customer-facing"
    assert inc.ai_context["gen_ai.request.model"] == "gpt-4o"
    assert inc.ai_context["agent.version"] == "2.3.1"
    assert inc.ai_context["confidence"] == 0.62
    assert "harmful_output" in json.dumps(inc.severity_reasons)
    [alert] = alerts(bot, inc.id or 0)
    assert alert.labels["source"] == "llm-observability"
    resolved = {**body, "status": "resolved"}
    r = bot.post("/webhooks/alerts", resolved)
    assert r.json()["resolved"] is False  # support-chatbot only notes source resolution
    assert r.json()["alerts_changed"] == 1


def test_unknown_workflow_is_filed_under_default_and_journalled(bot: Bot) -> None:
    body = {"dedup_key": "x1", "status": "firing", "title": "Odd", "workflow": "no-such-flow"}
    assert bot.post("/webhooks/alerts", body).status_code == 202
    [inc] = incidents(bot)
    assert inc.workflow == "unassigned"
    assert any("no-such-flow" in t and "does not define" in t for t in journal(bot, inc.id or 0))


def test_bad_auth_is_401_and_stores_nothing(bot: Bot) -> None:
    body = payload("alertmanager_v4_firing.json")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdA=="}):
        r = bot.post("/webhooks/alertmanager", body, headers=headers)
        assert r.status_code == 401, headers
    r = bot.client.post("/webhooks/alertmanager?source=nosuch", json=body, headers=AUTH)
    assert r.status_code == 401
    assert incidents(bot) == [] and count(bot, AlertRow) == 0


def test_source_token_identifies_the_source(bot: Bot) -> None:
    headers = {"Authorization": "Bearer change-me-alertmanager"}
    r = bot.post("/webhooks/alertmanager", payload("alertmanager_v4_firing.json"), headers=headers)
    assert r.status_code == 202
    assert incidents(bot)[0].source == "alertmanager"


def test_bad_bodies_are_422_naming_the_field(bot: Bot) -> None:
    r = bot.client.post("/webhooks/alertmanager", content=b"{not json", headers=AUTH)
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "(body)"
    body = payload("alertmanager_v4_firing.json")
    del body["groupKey"]
    r = bot.post("/webhooks/alertmanager", body)
    assert r.status_code == 422 and "groupKey" in r.json()["error"]
    body = payload("alertmanager_v4_firing.json")
    body["alerts"][1]["status"] = "burning"
    r = bot.post("/webhooks/alertmanager", body)
    assert r.status_code == 422
    assert r.json()["fields"][0]["field"] == "alerts.1.status"
    r = bot.post("/webhooks/alerts", {"dedup_key": "k", "status": "firing"})
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "title"
    r = bot.post(
        "/webhooks/alerts",
        {
            "dedup_key": "k",
            "status": "firing",
            "title": "t",
            "signal": {"kind": "error_rate", "window": "soon"},
        },
    )
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "signal.window"
    assert count(bot, AlertRow) == 0


def test_body_over_one_mib_is_413(bot: Bot) -> None:
    body = payload("alertmanager_v4_firing.json")
    body["commonAnnotations"]["padding"] = "x" * (1024 * 1024)
    r = bot.post("/webhooks/alertmanager", body)
    assert r.status_code == 413
    assert count(bot, AlertRow) == 0


@pytest.mark.both_backends
def test_storage_down_is_503_then_accepted_when_back(db_url: str, tmp_path: Any) -> None:
    b = make_bot(db_url)
    with b.client:
        real_url = b.container.engine.url
        # point the pool at a database that does not answer
        if db_url.startswith("sqlite"):
            broken = sa.create_engine(f"sqlite:///{tmp_path}/missing/dir/x.db")
        else:
            broken = sa.create_engine(
                "postgresql+psycopg://postgres@127.0.0.1:1/none",
                connect_args={"connect_timeout": 1},
            )
        b.container.pipeline._engine = broken
        r = b.post("/webhooks/alertmanager", payload("alertmanager_v4_firing.json"))
        assert r.status_code == 503, r.text
        # no database host, port, path or driver message for the sender to read
        assert r.json() == {"error": "storage unavailable, retry later"}
        b.container.pipeline._engine = b.container.engine
        r = b.post("/webhooks/alertmanager", payload("alertmanager_v4_firing.json"))
        assert r.status_code == 202
        assert str(b.container.engine.url) == str(real_url)
    broken.dispose()
    b.container.engine.dispose()


def test_health_ready_metrics(bot: Bot) -> None:
    assert bot.client.get("/healthz").json() == {"status": "ok"}
    ready = bot.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    bot.post("/webhooks/alertmanager", payload("alertmanager_v4_firing.json"))
    bot.post("/webhooks/alertmanager", payload("alertmanager_v4_firing.json"))
    text = bot.client.get("/metrics").text
    assert 'ai_incident_alerts_ingested_total{endpoint="alertmanager",outcome="new"} 2.0' in text
    assert (
        'ai_incident_alerts_ingested_total{endpoint="alertmanager",outcome="duplicate"} 2.0' in text
    )
    assert 'ai_incident_webhook_requests_total{endpoint="alertmanager",status="202"} 1.0' in text
    assert "ai_incident_ingest_seconds_bucket" in text
    assert "ai_incident_open_incidents 1.0" in text


def test_openapi_documents_the_webhooks(bot: Bot) -> None:
    spec = bot.client.get("/openapi.json").json()
    assert "/webhooks/alertmanager" in spec["paths"] and "/webhooks/alerts" in spec["paths"]
    post = spec["paths"]["/webhooks/alerts"]["post"]
    assert {"401", "413", "422", "503"} <= set(post["responses"])


def test_nul_characters_are_replaced_not_refused(bot: Bot) -> None:
    body = {"dedup_key": "nul", "status": "firing", "title": "bad\u0000byte", "workflow": "x"}
    r = bot.post("/webhooks/alerts", body)
    assert r.status_code == 202, r.text
    assert incidents(bot)[0].title == "bad\ufffdbyte"
