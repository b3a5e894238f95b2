"""The PagerDuty, Opsgenie and webhook stand-ins answer like the vendors and catch bad requests."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.standins.paging import OpsgenieStandin, PagerDutyStandin, WebhookReceiver

KEY = "R0UTINGKEY0000000000000000000001"


@pytest.fixture
def pd() -> Iterator[PagerDutyStandin]:
    with PagerDutyStandin() as standin:
        yield standin


@pytest.fixture
def og() -> Iterator[OpsgenieStandin]:
    with OpsgenieStandin() as standin:
        yield standin


def trigger(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": KEY,
        "event_action": "trigger",
        "dedup_key": "INC-1",
        "payload": {
            "summary": "INC-1 [P1] leak",
            "source": "ai-incident-bot",
            "severity": "critical",
        },
    }
    event.update(overrides)
    return event


# -- PagerDuty --------------------------------------------------------------------------------


def test_pagerduty_trigger_acknowledge_resolve(pd: PagerDutyStandin) -> None:
    r = httpx.post(pd.url, json=trigger())
    assert r.status_code == 202
    assert r.json() == {"status": "success", "message": "Event processed", "dedup_key": "INC-1"}
    # a second trigger with the same dedup key folds into the open alert
    assert httpx.post(pd.url, json=trigger()).status_code == 202
    assert len(pd.incidents) == 1 and pd.alerts["INC-1"].events == ["trigger", "trigger"]
    ack = {"routing_key": KEY, "event_action": "acknowledge", "dedup_key": "INC-1"}
    assert httpx.post(pd.url, json=ack).status_code == 202
    assert pd.alerts["INC-1"].status == "acknowledged"
    assert httpx.post(pd.url, json={**ack, "event_action": "resolve"}).status_code == 202
    assert pd.alerts["INC-1"].status == "resolved"
    # after resolve, a trigger opens a new alert
    httpx.post(pd.url, json=trigger())
    assert len(pd.incidents) == 2
    assert [e["event_action"] for e in pd.events()] == [
        "trigger",
        "trigger",
        "acknowledge",
        "resolve",
        "trigger",
    ]
    pd.assert_no_violations()


def test_pagerduty_trigger_without_dedup_key_gets_one(pd: PagerDutyStandin) -> None:
    event = trigger()
    del event["dedup_key"]
    r = httpx.post(pd.url, json=event)
    assert r.status_code == 202 and len(r.json()["dedup_key"]) == 32


@pytest.mark.parametrize(
    ("event", "says"),
    [
        (trigger(routing_key="short"), "routing_key must be the 32-character integration key"),
        (trigger(event_action="page"), "event_action must be trigger, acknowledge or resolve"),
        (trigger(dedup_key="x" * 256), "dedup_key is 256 characters, more than 255"),
        (trigger(payload=None), "payload (an object) is required to trigger"),
        (
            trigger(payload={"summary": "s" * 1025, "source": "x", "severity": "critical"}),
            "payload.summary is 1025 characters, more than 1024",
        ),
        (trigger(payload={"source": "x", "severity": "critical"}), "payload.summary is required"),
        (trigger(payload={"summary": "s", "severity": "critical"}), "payload.source is required"),
        (
            trigger(payload={"summary": "s", "source": "x", "severity": "high"}),
            "payload.severity must be one of critical, error, warning, info, got 'high'",
        ),
        (
            trigger(
                payload={"summary": "s", "source": "x", "severity": "info", "timestamp": "now"}
            ),
            "payload.timestamp 'now' is not ISO 8601",
        ),
        (
            trigger(
                payload={"summary": "s", "source": "x", "severity": "info", "custom_details": "x"}
            ),
            "payload.custom_details must be an object",
        ),
        (trigger(priority="P1"), "unknown field 'priority'"),
        (
            {"routing_key": KEY, "event_action": "resolve"},
            "dedup_key is required to resolve",
        ),
    ],
)
def test_pagerduty_refuses_malformed_events_field_by_field(
    pd: PagerDutyStandin, event: dict[str, Any], says: str
) -> None:
    r = httpx.post(pd.url, json=event)
    assert r.status_code == 400
    body = r.json()
    assert body["status"] == "invalid event" and body["message"] == "Event object is invalid"
    assert any(says in e for e in body["errors"])
    assert any(says in v for v in pd.violations)
    assert pd.incidents == []


def test_pagerduty_unknown_routing_key_and_injected_failures(pd: PagerDutyStandin) -> None:
    r = httpx.post(pd.url, json=trigger(routing_key="X" * 32))
    assert r.status_code == 400 and r.json()["errors"] == ["Invalid routing key"]
    pd.fail_next(status=429, retry_after=3)
    r = httpx.post(pd.url, json=trigger())
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    assert r.json()["status"] == "throttle event"
    pd.fail_next(status=503)
    assert httpx.post(pd.url, json=trigger()).status_code == 503
    assert pd.incidents == []  # refused before taking effect
    pd.fail_next(status=502, effect=True)  # took effect, then the answer was lost
    assert httpx.post(pd.url, json=trigger()).status_code == 502
    assert len(pd.incidents) == 1
    assert [r.status for r in pd.requests()] == [400, 429, 503, 502]
    pd.assert_no_violations()


def test_pagerduty_needs_json(pd: PagerDutyStandin) -> None:
    r = httpx.post(pd.url, content=b"routing_key=x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 400
    assert any("Content-Type must be application/json" in v for v in pd.violations)


# -- Opsgenie ---------------------------------------------------------------------------------


AUTH = {"Authorization": "GenieKey og-test-key"}


def create(
    og: OpsgenieStandin, body: dict[str, Any], headers: dict[str, str] = AUTH
) -> httpx.Response:
    return httpx.post(f"{og.base_url}/v2/alerts", json=body, headers=headers)


def act(
    og: OpsgenieStandin, alias: str, action: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    return httpx.post(
        f"{og.base_url}/v2/alerts/{alias}/{action}?identifierType=alias",
        json=body or {},
        headers=AUTH,
    )


def test_opsgenie_create_dedupe_add_responder_acknowledge_close(og: OpsgenieStandin) -> None:
    body = {
        "message": "INC-1 [P1] leak",
        "alias": "INC-1",
        "priority": "P1",
        "responders": [{"type": "user", "username": "alice@example.com"}],
        "tags": ["ai-incident"],
        "details": {"workflow": "support-chatbot"},
    }
    r = create(og, body)
    assert r.status_code == 202
    answer = r.json()
    assert answer["result"] == "Request will be processed" and answer["requestId"]
    # the same alias while open: de-duplicated, responders unchanged
    assert (
        create(
            og, {**body, "responders": [{"type": "user", "username": "bob@example.com"}]}
        ).status_code
        == 202
    )
    alert = og.alert("INC-1")
    assert alert is not None and alert.count == 2
    assert alert.responders == [{"type": "user", "username": "alice@example.com"}]
    r = act(
        og, "INC-1", "responders", {"responder": {"type": "user", "username": "bob@example.com"}}
    )
    assert r.status_code == 202
    assert alert.responders[-1] == {"type": "user", "username": "bob@example.com"}
    assert (
        act(og, "INC-1", "acknowledge", {"source": "ai-incident-bot", "note": "acked"}).status_code
        == 202
    )
    assert alert.acknowledged and alert.notes == ["acked"]
    assert act(og, "INC-1", "close").status_code == 202
    assert alert.status == "closed"
    # acting on an alias that does not exist is accepted and fails later, as Opsgenie does
    assert act(og, "INC-404", "close").status_code == 202
    assert og.failed_requests[-1][1] == "Alert does not exist"
    og.assert_no_violations()


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"alias": "INC-1"}, "message", "Message can not be empty."),
        ({"message": "m" * 131}, "message", "more than 130"),
        ({"message": "m", "alias": "a" * 513}, "alias", "more than 512"),
        ({"message": "m", "description": "d" * 15_001}, "description", "more than 15000"),
        ({"message": "m", "source": "s" * 101}, "source", "more than 100"),
        ({"message": "m", "priority": "P0"}, "priority", "must be one of P1"),
        ({"message": "m", "tags": ["t" * 51]}, "tags", "at most 50 characters"),
        ({"message": "m", "tags": ["t"] * 21}, "tags", "at most 20"),
        ({"message": "m", "details": {"n": 1}}, "details", "object of strings"),
        (
            {"message": "m", "responders": [{"type": "person", "name": "x"}]},
            "responders",
            "type must be one of",
        ),
        (
            {"message": "m", "responders": [{"type": "user"}]},
            "responders",
            "needs id or name or username",
        ),
        ({"message": "m", "severity": "P1"}, "severity", "unknown field"),
    ],
)
def test_opsgenie_refuses_malformed_alerts_field_by_field(
    og: OpsgenieStandin, body: dict[str, Any], field: str, says: str
) -> None:
    r = create(og, body)
    assert r.status_code == 422
    answer = r.json()
    assert answer["message"].startswith("Request body is not processable")
    assert says in answer["errors"][field]
    assert og.alerts == []


def test_opsgenie_auth_and_actions_are_checked(og: OpsgenieStandin) -> None:
    assert create(og, {"message": "m"}, headers={}).status_code == 401
    assert (
        create(og, {"message": "m"}, headers={"Authorization": "Bearer og-test-key"}).status_code
        == 401
    )
    assert any("GenieKey" in v for v in og.violations)
    og.violations.clear()
    create(og, {"message": "m", "alias": "INC-2"})
    r = httpx.post(
        f"{og.base_url}/v2/alerts/INC-2/acknowledge?identifierType=name", json={}, headers=AUTH
    )
    assert r.status_code == 422 and "identifierType" in r.json()["errors"]
    r = act(og, "INC-2", "responders", {})
    assert r.status_code == 422 and r.json()["errors"]["responder"] == "responder is required"
    og.fail_next(status=429, retry_after=2)
    r = create(og, {"message": "m"})
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"


# -- the webhook receiver ---------------------------------------------------------------------


def signed(secret: str, body: bytes, at: int) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-AI-Incident-Signature": f"t={at},v1={digest}", "Content-Type": "application/json"}


def test_webhook_receiver_checks_the_signature() -> None:
    with WebhookReceiver(secret="page-secret") as hook:
        body = json.dumps({"event": "page"}).encode()
        now = int(time.time())
        assert (
            httpx.post(hook.url, content=body, headers=signed("page-secret", body, now)).status_code
            == 200
        )
        assert hook.received == [{"event": "page"}]
        for headers in (
            signed("wrong", body, now),
            signed("page-secret", body, now - 301),
            {"Content-Type": "application/json"},
        ):
            assert httpx.post(hook.url, content=body, headers=headers).status_code == 401
        assert len(hook.violations) == 3
        hook.fail_next(status=503)
        assert (
            httpx.post(hook.url, content=body, headers=signed("page-secret", body, now)).status_code
            == 503
        )
