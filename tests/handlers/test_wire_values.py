"""Values that real senders do send and parsers choke on: NaN, naive and far-off times, deep JSON.

Every one of them is accepted and stored (a 4xx makes Alertmanager drop the alert), except JSON
nested deeper than any sender nests, which is refused with a 422 before it is parsed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.services.digest import StoredHandoffs
from storage.models import AlertRow, HandoffRow, IncidentRow
from tests.conftest import AUTH, Bot, make_bot, payload
from tests.test_cli import run_cli

JSON_HEADERS = {**AUTH, "Content-Type": "application/json"}


def strict_json(text: str) -> Any:
    """Parse JSON as PostgreSQL and every strict parser do: no NaN or Infinity tokens."""

    def refuse(token: str) -> Any:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def only_incident(bot: Bot) -> tuple[IncidentRow, list[AlertRow]]:
    with Session(bot.container.engine) as s:
        [inc] = s.exec(select(IncidentRow)).all()
        rows = list(s.exec(select(AlertRow).where(AlertRow.incident_id == inc.id)).all())
        return inc, rows


def nan_alertmanager_body() -> dict[str, Any]:
    """What Alertmanager sends when the rule's `{{ $value }}` is 0/0."""
    body = payload("alertmanager_v4_firing.json")
    for alert in body["alerts"]:
        alert["labels"]["signal"] = "error_rate"
        alert["annotations"]["value"] = "NaN"
    return body


# -- NaN and ±Infinity ---------------------------------------------------------------------------


def test_alertmanager_nan_value_is_stored_and_the_reason_says_why(bot: Bot) -> None:
    r = bot.post("/webhooks/alertmanager", nan_alertmanager_body())
    assert r.status_code == 202, r.text
    inc, rows = only_incident(bot)
    assert {row.signal["value"] for row in rows if row.signal} == {"NaN"}
    texts = [reason["text"] for reason in inc.severity_reasons]
    assert "error_rate value NaN is not a finite number: no threshold rule matches it" in texts
    # the `severity: critical` label still decides, as for any alert no rule can judge
    assert inc.severity == "P1"
    # Alertmanager repeats the notification every group_interval: a duplicate, nothing changes
    again = bot.post("/webhooks/alertmanager", nan_alertmanager_body())
    assert again.status_code == 200 and again.json()["duplicate"] is True


def test_nan_and_infinity_anywhere_in_a_generic_alert_are_stored_as_json(bot: Bot) -> None:
    raw = (
        b'{"dedup_key": "spend-1", "status": "firing", "title": "spend went odd",'
        b' "signal": {"kind": "daily_spend", "value": Infinity, "baseline": NaN, "stddev": NaN},'
        b' "cost_usd": NaN, "latency_ms": 1e999, "labels": {"value": "NaN"}}'
    )
    r = bot.client.post("/webhooks/alerts", content=raw, headers=JSON_HEADERS)
    assert r.status_code == 202, r.text
    inc, [row] = only_incident(bot)
    assert row.signal is not None
    assert (row.signal["value"], row.signal["baseline"], row.signal["stddev"]) == (
        "Infinity",
        "NaN",
        "NaN",
    )
    assert row.ai_context["cost_usd"] == "NaN" and row.ai_context["latency_ms"] == "Infinity"
    assert row.labels == {"value": "NaN"}
    assert inc.severity == "P3"
    texts = [reason["text"] for reason in inc.severity_reasons]
    assert (
        "daily_spend value Infinity is not a finite number: no threshold rule matches it" in texts
    )
    assert "daily_spend baseline NaN is not a finite number: no threshold rule matches it" in texts


def test_grafana_values_and_handoff_context_keep_nan(bot: Bot) -> None:
    grafana = payload("grafana_unified_firing.json")
    grafana["alerts"][0]["values"] = {"B": 0.5}
    raw = json.dumps(grafana).replace('{"B": 0.5}', '{"B": NaN, "C": -Infinity}').encode()
    r = bot.client.post("/webhooks/alertmanager", content=raw, headers=JSON_HEADERS)
    assert r.status_code == 202, r.text
    _, rows = only_incident(bot)
    assert rows[0].values == {"B": "NaN", "C": "-Infinity"}

    handoff = (
        b'{"idempotency_key": "nan-1", "workflow": "email-summarizer", "reason": "tool_error",'
        b' "context": {"score": NaN, "bounds": [-Infinity, Infinity]}}'
    )
    r = bot.client.post("/webhooks/handoffs", content=handoff, headers=JSON_HEADERS)
    assert r.status_code == 202, r.text
    with Session(bot.container.engine) as s:
        [row] = s.exec(select(HandoffRow)).all()
        assert row.context == {"score": "NaN", "bounds": ["-Infinity", "Infinity"]}
    status = bot.client.get(f"/handoffs/{r.json()['handoff_id']}", headers=AUTH)
    assert status.status_code == 200, status.text


def test_a_negative_measure_is_still_refused(bot: Bot) -> None:
    body = {"dedup_key": "neg", "status": "firing", "title": "t", "cost_usd": -1}
    r = bot.post("/webhooks/alerts", body)
    assert r.status_code == 422
    assert r.json()["error"] == "invalid field cost_usd: Value error, must not be negative"


@pytest.mark.slow  # runs the CLI in a child process
@pytest.mark.both_backends
def test_export_json_of_a_nan_alert_is_standard_json(db_url: str, tmp_path: Path) -> None:
    bot = make_bot(db_url)
    try:
        with bot.client:
            r = bot.post("/webhooks/alertmanager", nan_alertmanager_body())
            assert r.status_code == 202, r.text
    finally:
        bot.container.engine.dispose()
    out = run_cli("export", "INC-1", "--format", "json", database_url=db_url, workdir=tmp_path)
    assert out.returncode == 0, out.stderr
    exported = strict_json(out.stdout)
    assert {a["signal"]["value"] for a in exported["alerts"]} == {"NaN"}


# -- times ---------------------------------------------------------------------------------------


def generic(timestamp: str, key: str = "t-1", **extra: Any) -> dict[str, Any]:
    return {"dedup_key": key, "status": "firing", "title": "t", "timestamp": timestamp, **extra}


def test_times_without_an_offset_are_read_as_utc(bot: Bot) -> None:
    r = bot.post("/webhooks/alerts", generic("2026-11-23T09:30:00"))
    assert r.status_code == 202, r.text
    am = payload("alertmanager_v4_firing.json")
    am["alerts"][0]["startsAt"] = "2026-11-20T08:24:38.326"
    am["alerts"][1]["endsAt"] = "2026-11-20T09:00:00"
    am["alerts"][1]["status"] = "resolved"
    r = bot.post("/webhooks/alertmanager", am)
    assert r.status_code == 202, r.text
    with Session(bot.container.engine) as s:
        starts = {a.fingerprint: a for a in s.exec(select(AlertRow)).all()}
    assert starts["t-1"].starts_at == datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    assert starts["f404ecabc8dd5cd7"].starts_at == datetime(2026, 11, 20, 8, 24, 38, 326000, UTC)
    assert starts["f8f08d4e32c61a9d"].ends_at == datetime(2026, 11, 20, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    "when",
    [
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-05:00",
        "0001-01-01T00:00:00+05:00",
        "0001-01-01T00:00:00Z",
        "1000-01-01T00:00:00",
    ],
)
def test_far_off_times_are_accepted_as_not_given(bot: Bot, when: str) -> None:
    # an error rate between the P2 and P1 thresholds: the engine computes when it would rise
    signal = {"kind": "error_rate", "value": 0.07}
    r = bot.post("/webhooks/alerts", generic(when, signal=signal))
    assert r.status_code == 202, r.text
    am = payload("alertmanager_v4_firing.json")
    for alert in am["alerts"]:
        alert["startsAt"] = when
        alert["endsAt"] = when
        alert["labels"]["signal"] = "error_rate"
        alert["annotations"]["value"] = "0.07"
    r = bot.post("/webhooks/alertmanager", am)
    assert r.status_code == 202, r.text
    with Session(bot.container.engine) as s:
        rows = s.exec(select(AlertRow)).all()
    assert len(rows) == 3
    assert all(a.starts_at is None and a.ends_at is None for a in rows)


def test_the_zero_ends_at_of_a_firing_alert_still_means_not_ended(bot: Bot) -> None:
    r = bot.post("/webhooks/alertmanager", payload("alertmanager_v4_firing.json"))
    assert r.status_code == 202, r.text
    _, rows = only_incident(bot)
    assert all(a.ends_at is None and a.starts_at is not None for a in rows)


# -- nesting -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    """One SQLite bot for the refusals: nothing reaches the database."""
    b = make_bot(f"sqlite:///{tmp_path_factory.mktemp('nesting') / 'bot.db'}")
    with b.client:
        yield b
    b.container.engine.dispose()


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("depth", [65, 900, 100_000])
@pytest.mark.parametrize(
    "path", ["/webhooks/alerts", "/webhooks/alertmanager", "/webhooks/handoffs"]
)
def test_json_nested_too_deep_is_refused_before_parsing(lite: Bot, path: str, depth: int) -> None:
    body = b'{"dedup_key": "deep", "labels": {"x": ' + nested(depth) + b"}}"
    r = lite.client.post(path, content=body, headers=JSON_HEADERS)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "body is JSON nested deeper than 64 levels"


def test_json_nested_within_the_limit_is_parsed(bot: Bot) -> None:
    # 62 levels of context under the body object and its `context` key: 64 in all
    handoff = (
        b'{"idempotency_key": "deep-ok", "workflow": "email-summarizer", "reason": "tool_error",'
        b' "context": {"a": ' + nested(62) + b"}}"
    )
    r = bot.client.post("/webhooks/handoffs", content=handoff, headers=JSON_HEADERS)
    assert r.status_code == 202, r.text
    # brackets inside strings are text, not nesting
    body = generic("2026-11-23T09:30:00Z", description="[" * 5000 + "{" * 5000)
    assert bot.post("/webhooks/alerts", body).status_code == 202


def test_a_null_byte_body_nested_too_deep_is_refused(lite: Bot) -> None:
    body = b'{"dedup_key": "nul\\u0000", "labels": ' + nested(900) + b"}"
    r = lite.client.post("/webhooks/alerts", content=body, headers=JSON_HEADERS)
    assert r.status_code == 422, r.text


def test_ofrep_body_nested_too_deep_is_a_parse_error(lite: Bot) -> None:
    body = b'{"context": {"x": ' + nested(10_000) + b"}}"
    r = lite.client.post("/ofrep/v1/evaluate/flags", content=body, headers=JSON_HEADERS)
    assert r.status_code == 400, r.text
    assert r.json() == {
        "errorCode": "PARSE_ERROR",
        "errorDetails": "body is JSON nested deeper than 64 levels",
    }


def test_the_digest_leaves_a_cost_that_is_not_a_number_out(bot: Bot) -> None:
    for key, cost in (("cost-1", b"NaN"), ("cost-2", b"0.5"), ("cost-3", b"Infinity")):
        handoff = (
            b'{"idempotency_key": "' + key.encode() + b'", "workflow": "email-summarizer",'
            b' "reason": "tool_error", "cost_usd": ' + cost + b"}"
        )
        r = bot.client.post("/webhooks/handoffs", content=handoff, headers=JSON_HEADERS)
        assert r.status_code == 202, r.text
    now = bot.clock.now
    with Session(bot.container.engine) as s:
        facts = StoredHandoffs().handoff_facts(s, now - timedelta(days=1), now + timedelta(days=1))
    assert sorted(f.cost_usd for f in facts if f.cost_usd is not None) == [0.5]
    assert len(facts) == 3
