"""Who may do what over HTTP: each credential opens only its own routes; bad ones are 401, never 500.

The global webhook token is the operator's key to every route. A source's own token or secret
opens only what its kind may do: alert sources the alert webhooks, agent sources the handoff
routes (their own handoffs only) and the kill-switch flags (OFREP).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute

from bot.config import Policy, Source
from bot.settings import Settings
from handlers.auth import grafana_signature
from tests.conftest import AUTH, TOKEN, Bot, make_bot, payload, without_tickets
from tests.standins.slack import SlackStandin
from tests.support.databases import database
from tests.support.handoffs import AGENT_SECRET, agent_headers, encoded, handoff_body
from tests.support.slack_requests import SECRET, signed

ALERTMANAGER = {"Authorization": "Bearer change-me-alertmanager"}  # the example's alert source
GRAFANA_SECRET = "change-me-grafana"  # the example's Grafana source, env unset
POLLER_TOKEN = "poller-agent-token-0123456789"
OTHER_TOKEN = "other-agent-token-0123456789"
POLLER = {"Authorization": f"Bearer {POLLER_TOKEN}"}
OTHER = {"Authorization": f"Bearer {OTHER_TOKEN}"}
FLAG = "workflow.support-chatbot.enabled"
# routes anyone may call; every other route must authenticate
OPEN_PATHS = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
}


def policy(**grafana: Any) -> Policy:
    """The example policy plus two agent sources that poll with tokens of their own."""
    base = without_tickets()
    sources = dict(base.sources)
    sources["poller"] = Source(kind="agent", token=POLLER_TOKEN)
    sources["other-agent"] = Source(kind="agent", token=OTHER_TOKEN)
    if grafana:
        sources["grafana"] = sources["grafana"].model_copy(update=grafana)
    return base.model_copy(update={"sources": sources})


def local_bot(tmp_path: Path, the_policy: Policy) -> Iterator[Bot]:
    with database("sqlite", tmp_path) as url:
        b = make_bot(url, policy=the_policy)
        with b.client:
            yield b
        b.container.engine.dispose()


@pytest.fixture
def lbot(tmp_path: Path) -> Iterator[Bot]:
    """A local-mode bot on SQLite with the agent sources above."""
    yield from local_bot(tmp_path, policy())


@pytest.fixture
def lenient(tmp_path: Path) -> Iterator[Bot]:
    """A local-mode bot whose Grafana source also takes signatures without a timestamp."""
    yield from local_bot(tmp_path, policy(require_timestamp=False))


@pytest.fixture
def slack_bot(
    tmp_path: Path, slack: SlackStandin, caplog: pytest.LogCaptureFixture
) -> Iterator[Bot]:
    """A bot in Slack HTTP mode (so `/slack/events` is served) with the agent sources above.

    Logging is at DEBUG from the start, as a server run with `--log-level debug`: Bolt's loggers
    take their level when the app is built.
    """
    caplog.set_level(logging.DEBUG)
    with database("sqlite", tmp_path) as url:
        settings = Settings(
            database_url=url,
            ai_incident_webhook_token=TOKEN,
            slack_bot_token="xoxb-test",
            slack_signing_secret=SECRET,
            slack_api_url=slack.url,
        )
        b = make_bot(url, policy=policy(), settings=settings)
        with b.client:
            yield b
        b.container.engine.dispose()


def authenticated_routes(bot: Bot) -> list[tuple[str, str]]:
    """Every method and path the app serves that is not open to all, with sample parameters.

    The documented routes come from the OpenAPI document; undocumented ones (Slack's) from the
    app's own route table.
    """
    found: set[tuple[str, str]] = set()
    for path, operations in bot.client.get("/openapi.json").json()["paths"].items():
        found |= {(method.upper(), path) for method in operations}
    for route in bot.client.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, APIRoute):
            found |= {(method, route.path) for method in route.methods - {"HEAD"}}
    return sorted(
        (method, path.replace("{handoff_id}", "HO-1").replace("{key}", FLAG))
        for method, path in found
        if path not in OPEN_PATHS
    )


def call(bot: Bot, method: str, path: str, headers: dict[str, Any], body: bytes = b"{}") -> Any:
    content = body if method != "GET" else None
    return bot.client.request(method, path, content=content, headers=headers)


def fresh_stamp() -> str:
    return str(int(time.time()))


# -- item: a non-ASCII credential is a wrong credential (401), never a server error ---------------

NON_ASCII = "t\u00f6k\u00e9n-\u2603".encode()  # what a client sends for "tökén-☃" in UTF-8


def non_ascii_headers() -> list[dict[str, Any]]:
    stamp = fresh_stamp().encode()
    return [
        {"Authorization": b"Bearer " + NON_ASCII},
        {"X-Grafana-Alerting-Signature": NON_ASCII},
        {
            "X-Grafana-Alerting-Signature": NON_ASCII,
            "X-Grafana-Alerting-Signature-Timestamp": stamp,
        },
        {"X-AI-Incident-Signature": b"t=" + stamp + b",v1=" + NON_ASCII},
        {"X-Hub-Signature": b"sha256=" + NON_ASCII},
        {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": b"v0=" + NON_ASCII},
    ]


def test_non_ascii_credentials_are_401_on_every_authenticated_route(slack_bot: Bot) -> None:
    routes = authenticated_routes(slack_bot)
    # the sweep finds every edge: alert, Jira, handoff, OFREP and Slack routes
    assert {path for _, path in routes} >= {
        "/webhooks/alertmanager",
        "/webhooks/alerts",
        "/webhooks/jira",
        "/webhooks/handoffs",
        "/handoffs/HO-1",
        f"/ofrep/v1/evaluate/flags/{FLAG}",
        "/ofrep/v1/evaluate/flags",
        "/ofrep/v1/configuration",
        "/slack/events",
    }
    for method, path in routes:
        for headers in non_ascii_headers():
            r = call(slack_bot, method, path, {"Content-Type": "application/json", **headers})
            assert r.status_code == 401, (method, path, headers, r.status_code, r.text)
            assert "Traceback" not in r.text


def test_a_non_numeric_slack_timestamp_is_401(slack_bot: Bot) -> None:
    body = "command=%2Fai-incident&text=help"
    for stamp in ("soon", "nan", "1e9", "", " ", "\u0661\u0662".encode()):
        headers = {**signed(body), "X-Slack-Request-Timestamp": stamp}
        r = slack_bot.client.post("/slack/events", content=body, headers=headers)
        assert r.status_code == 401, (stamp, r.status_code, r.text)


# -- item: /slack/events limits the body before anything else and never logs an unverified one ---


def test_slack_events_refuses_a_body_over_the_limit_before_anything_else(
    slack_bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    limit = slack_bot.container.settings.max_body_bytes
    body = b"payload=" + b"A" * limit
    r = slack_bot.client.post("/slack/events", content=body, headers=signed(body.decode()))
    assert r.status_code == 413 and str(limit) in r.text

    def chunks() -> Iterator[bytes]:
        for _ in range(limit // 65536 + 2):
            yield b"B" * 65536

    # no Content-Length: the limit holds for a chunked body too
    r = slack_bot.client.post(
        "/slack/events", content=chunks(), headers={"X-Slack-Signature": "v0=x"}
    )
    assert r.status_code == 413
    assert all(len(record.getMessage()) < 10_000 for record in caplog.records)


def test_a_badly_signed_slack_request_never_logs_its_body(
    slack_bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    marker = "unverified-body-marker-7f3a"
    body = f"command=%2Fai-incident&text={marker}"
    for headers in (
        signed(body, secret="wrong"),
        signed(body, at=int(time.time()) - 6 * 60),
        {"Content-Type": "application/x-www-form-urlencoded"},
        {**signed(body), "X-Slack-Signature": "v0=" + "0" * 64},
    ):
        r = slack_bot.client.post("/slack/events", content=body, headers=headers)
        assert r.status_code == 401, r.text
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert marker not in logged


def test_a_well_signed_slack_request_still_works(slack_bot: Bot) -> None:
    body = json.dumps({"token": "legacy", "challenge": "c-123", "type": "url_verification"})
    headers = {**signed(body), "Content-Type": "application/json"}
    r = slack_bot.client.post("/slack/events", content=body, headers=headers)
    assert r.status_code == 200 and "c-123" in r.text


# -- item: any token opens every door -----------------------------------------------------------


def test_an_alert_sources_token_opens_only_the_alert_webhooks(lbot: Bot) -> None:
    assert (
        lbot.post(
            "/webhooks/alertmanager", payload("alertmanager_v4_firing.json"), ALERTMANAGER
        ).status_code
        == 202
    )
    assert lbot.post("/webhooks/handoffs", handoff_body(), AUTH).status_code == 202  # HO-1
    for method, path in authenticated_routes(lbot):
        if path.startswith(("/webhooks/alert", "/webhooks/jira")):
            continue
        r = call(lbot, method, path, {"Content-Type": "application/json", **ALERTMANAGER})
        assert r.status_code == 401, (method, path, r.status_code, r.text)
    r = lbot.post("/webhooks/handoffs", handoff_body("k2"), ALERTMANAGER)
    assert "alertmanager" in r.json()["error"] and "handoffs" in r.json()["error"]


def test_an_agents_token_opens_only_the_agent_routes(lbot: Bot) -> None:
    r = lbot.post("/webhooks/handoffs", handoff_body(), POLLER)
    assert r.status_code == 202 and r.json()["handoff_id"] == "HO-1"
    assert lbot.client.get("/handoffs/HO-1", headers=POLLER).status_code == 200
    assert lbot.client.post(f"/ofrep/v1/evaluate/flags/{FLAG}", headers=POLLER).status_code == 200
    assert lbot.client.post("/ofrep/v1/evaluate/flags", headers=POLLER).status_code == 200
    assert lbot.client.get("/ofrep/v1/configuration", headers=POLLER).status_code == 200
    for path in ("/webhooks/alertmanager", "/webhooks/alerts"):
        r = lbot.post(path, payload("alertmanager_v4_firing.json"), POLLER)
        assert r.status_code == 401, (path, r.text)


def test_a_grafana_secret_is_not_an_agent_secret_and_the_other_way_round(lbot: Bot) -> None:
    raw = encoded(handoff_body())
    r = lbot.client.post(
        "/webhooks/handoffs", content=raw, headers=agent_headers(raw, secret=GRAFANA_SECRET)
    )
    assert r.status_code == 401, r.text
    body = json.dumps(payload("grafana_unified_firing.json")).encode()
    stamp = fresh_stamp()
    for secret in (AGENT_SECRET, GRAFANA_SECRET):
        headers = {
            "Content-Type": "application/json",
            "X-Grafana-Alerting-Signature": grafana_signature(secret, body, stamp),
            "X-Grafana-Alerting-Signature-Timestamp": stamp,
        }
        r = lbot.client.post("/webhooks/alertmanager", content=body, headers=headers)
        assert r.status_code == (401 if secret == AGENT_SECRET else 202), (secret, r.text)
    # the agent's own secret reads the flags; Grafana's reads neither flags nor handoffs
    flags = lbot.client.post("/ofrep/v1/evaluate/flags", headers=agent_headers(b""))
    assert flags.status_code == 200, flags.text
    grafana_signed = agent_headers(b"", secret=GRAFANA_SECRET)
    assert lbot.client.post("/ofrep/v1/evaluate/flags", headers=grafana_signed).status_code == 401
    assert lbot.client.get("/handoffs/HO-1", headers=grafana_signed).status_code == 401


def test_a_source_reads_only_its_own_handoffs(lbot: Bot) -> None:
    assert lbot.post("/webhooks/handoffs", handoff_body("mine"), POLLER).status_code == 202
    raw = encoded(handoff_body("signed"))
    assert (
        lbot.client.post("/webhooks/handoffs", content=raw, headers=agent_headers(raw)).status_code
        == 202
    )
    assert lbot.client.get("/handoffs/HO-1", headers=POLLER).status_code == 200
    assert lbot.client.get("/handoffs/HO-2", headers=agent_headers(b"")).status_code == 200
    # another source's handoff is answered exactly like one that does not exist
    for headers, theirs in ((OTHER, "HO-1"), (POLLER, "HO-2"), (agent_headers(b""), "HO-1")):
        other = lbot.client.get(f"/handoffs/{theirs}", headers=headers)
        missing = lbot.client.get("/handoffs/HO-99", headers=headers)
        assert other.status_code == missing.status_code == 404
        assert other.json()["error"].replace(theirs, "HO-99") == missing.json()["error"]
    # the operator's global token reads every handoff
    for handoff_id in ("HO-1", "HO-2"):
        assert lbot.client.get(f"/handoffs/{handoff_id}", headers=AUTH).status_code == 200


def test_another_sources_idempotency_key_does_not_reveal_its_handoff(lbot: Bot) -> None:
    first = lbot.post("/webhooks/handoffs", handoff_body("shared-key"), POLLER)
    assert first.status_code == 202
    r = lbot.post("/webhooks/handoffs", handoff_body("shared-key"), OTHER)
    assert r.status_code == 409 and "HO-1" not in r.text, r.text
    assert "idempotency_key" in r.json()["error"]
    # the source itself, and the operator, get the stored handoff back
    assert (
        lbot.post("/webhooks/handoffs", handoff_body("shared-key"), POLLER).json() == first.json()
    )
    assert lbot.post("/webhooks/handoffs", handoff_body("shared-key"), AUTH).status_code == 200


def test_a_polled_handoff_shows_no_callback_credentials(lbot: Bot) -> None:
    url = "http://agent:s3cr3t-pw@127.0.0.1:9/decisions?token=tok-123&lang=en"
    assert (
        lbot.post("/webhooks/handoffs", handoff_body(callback_url=url), POLLER).status_code == 202
    )
    for headers in (POLLER, AUTH):
        r = lbot.client.get("/handoffs/HO-1", headers=headers)
        assert r.status_code == 200
        assert "s3cr3t-pw" not in r.text and "tok-123" not in r.text and "agent:" not in r.text
        shown = r.json()["callback"]["url"]
        assert shown.startswith("http://127.0.0.1:9/decisions?") and "lang=" in shown


def test_the_global_token_opens_every_route(slack_bot: Bot) -> None:
    for method, path in authenticated_routes(slack_bot):
        if path in ("/webhooks/jira", "/slack/events"):
            continue  # Jira and Slack sign with secrets of their own
        r = call(slack_bot, method, path, {"Content-Type": "application/json", **AUTH})
        assert r.status_code != 401, (method, path, r.text)


# -- item: replayable Grafana signatures ---------------------------------------------------------


def grafana_headers(body: bytes, stamp: str | None, secret: str = GRAFANA_SECRET) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "X-Grafana-Alerting-Signature": grafana_signature(secret, body, stamp),
    }
    if stamp is not None:
        headers["X-Grafana-Alerting-Signature-Timestamp"] = stamp
    return headers


@pytest.mark.parametrize("stamp", ["nan", "NaN", "inf", "-inf", "1e999", "soon", "", "0x10"])
def test_a_grafana_timestamp_that_is_not_a_finite_unix_time_is_401(lbot: Bot, stamp: str) -> None:
    body = json.dumps(payload("grafana_unified_firing.json")).encode()
    r = lbot.client.post(
        "/webhooks/alertmanager", content=body, headers=grafana_headers(body, stamp)
    )
    assert r.status_code == 401, r.text
    assert "X-Grafana-Alerting-Signature-Timestamp" in r.json()["error"]


def test_a_source_can_require_the_timestamped_grafana_signature(lbot: Bot) -> None:
    strict = lbot  # the example policy's Grafana source has require_timestamp: true
    assert strict.container.policy.sources["grafana"].require_timestamp
    body = json.dumps(payload("grafana_unified_firing.json")).encode()
    r = strict.client.post(
        "/webhooks/alertmanager", content=body, headers=grafana_headers(body, None)
    )
    assert r.status_code == 401
    assert "require_timestamp" in r.json()["error"], r.text
    r = strict.client.post(
        "/webhooks/alertmanager?source=grafana", content=body, headers=grafana_headers(body, None)
    )
    assert r.status_code == 401
    ok = strict.client.post(
        "/webhooks/alertmanager", content=body, headers=grafana_headers(body, fresh_stamp())
    )
    assert ok.status_code == 202, ok.text


def test_without_the_requirement_an_untimed_grafana_signature_still_works(lenient: Bot) -> None:
    body = json.dumps(payload("grafana_unified_firing.json")).encode()
    r = lenient.client.post(
        "/webhooks/alertmanager", content=body, headers=grafana_headers(body, None)
    )
    assert r.status_code == 202, r.text
