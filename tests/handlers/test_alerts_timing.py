"""A sender's start time and window over HTTP: sustained only on the bot's clock, unless the
source has `trusted_timing`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.config import Policy, Source
from bot.scheduler import run_due_jobs
from storage.models import AlertRow, IncidentRow
from tests.conftest import AUTH, Bot, FakeClock, example_policy, make_bot

TRUSTED = {"Authorization": "Bearer prometheus-token"}
# the example policy's business hours: Europe/Berlin, Monday to Friday, 09:00 to 18:00
SATURDAY_3AM_BERLIN = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
MONDAY_1PM_BERLIN = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def policy() -> Policy:
    """The example policy and one more source whose start times and windows are trusted."""
    base = example_policy()
    trusted = Source(kind="alertmanager", token="prometheus-token", trusted_timing=True)
    return base.model_copy(update={"sources": {**base.sources, "prometheus": trusted}})


def with_trusted_generic() -> Policy:
    """The policy and a generic source `obs` whose start times and windows are trusted."""
    pol = policy()
    trusted = Source(kind="generic", token="obs-token", trusted_timing=True)
    return pol.model_copy(update={"sources": {**pol.sources, "obs": trusted}})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()  # Monday 2026-11-23 10:00 UTC, inside business hours


@pytest.fixture
def bot(db_url: str, clock: FakeClock) -> Iterator[Bot]:
    b = make_bot(db_url, policy=policy(), clock=clock)
    with b.client:
        yield b
    b.container.engine.dispose()


def incident(bot: Bot) -> IncidentRow:
    with Session(bot.container.engine) as s:
        return s.exec(select(IncidentRow)).one()


def seen_at(bot: Bot) -> dict[str, datetime | None]:
    with Session(bot.container.engine) as s:
        return {a.fingerprint: a.firing_seen_at for a in s.exec(select(AlertRow)).all()}


def review(bot: Bot) -> int:
    return run_due_jobs(bot.container.engine, [bot.container.incidents.review_due], lambda: None)


def generic(
    stamped: datetime, signal: dict[str, Any], key: str = "summarizer-errors"
) -> dict[str, Any]:
    return {
        "dedup_key": key,
        "status": "firing",
        "title": "Summarizer error rate",
        "workflow": "email-summarizer",
        "timestamp": stamped.isoformat(),
        "signal": signal,
    }


def alertmanager(alerts: list[tuple[str, str, datetime]]) -> dict[str, Any]:
    """A notification of error-rate alerts: (fingerprint, status, startsAt) each."""
    labels = {"alertname": "SummarizerErrorRate", "workflow": "email-summarizer"}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="SummarizerErrorRate"}',
        "status": "firing",
        "receiver": "ai-incident",
        "groupLabels": {"alertname": "SummarizerErrorRate"},
        "commonLabels": labels,
        "commonAnnotations": {"summary": "email-summarizer error rate above 5%"},
        "alerts": [
            {
                "status": status,
                "labels": {**labels, "signal": "error_rate", "instance": fingerprint},
                "annotations": {"value": "0.07", "window": "2h"},
                "startsAt": starts.isoformat(),
                "fingerprint": fingerprint,
            }
            for fingerprint, status, starts in alerts
        ],
    }


def first_reason(row: IncidentRow) -> str:
    return str(row.severity_reasons[0]["text"])


def test_a_backdated_generic_alert_is_p3_until_the_bot_has_seen_it_for_two_hours(
    bot: Bot, clock: FakeClock
) -> None:
    body = generic(clock.now - timedelta(hours=3), {"kind": "error_rate", "value": 0.07})
    assert bot.post("/webhooks/alerts", body).status_code == 202
    row = incident(bot)
    assert row.severity == "P3"
    assert "not yet sustained 2h (firing for 0s as seen by the bot" in first_reason(row)
    assert row.severity_review_at == clock.now + timedelta(hours=2)

    clock.advance(minutes=119)
    assert review(bot) == 0
    # the sender re-sends it with a new value: the bot's first sight still counts
    body["signal"]["value"] = 0.08
    assert bot.post("/webhooks/alerts", body).status_code == 202
    assert incident(bot).severity == "P3"
    assert seen_at(bot) == {"summarizer-errors": clock.now - timedelta(minutes=119)}

    clock.advance(minutes=1)
    assert review(bot) == 1
    row = incident(bot)
    assert row.severity == "P2"
    assert "sustained 2h (P2 threshold; firing for 2h as seen by the bot" in first_reason(row)


def test_an_alert_that_rises_above_five_percent_counts_from_its_first_sight(
    bot: Bot, clock: FakeClock
) -> None:
    first = clock.now
    body = generic(first, {"kind": "error_rate", "value": 0.03})
    assert bot.post("/webhooks/alerts", body).status_code == 202
    assert (incident(bot).severity, incident(bot).severity_review_at) == ("P3", None)
    clock.advance(hours=3)
    body["signal"]["value"] = 0.07
    assert bot.post("/webhooks/alerts", body).status_code == 202
    row = incident(bot)
    assert row.severity == "P2"
    assert "firing for 3h as seen by the bot" in first_reason(row)
    assert seen_at(bot) == {"summarizer-errors": first}


def test_a_backdated_generic_alert_from_a_trusted_source_is_p2_at_once(
    db_url: str, clock: FakeClock
) -> None:
    other = make_bot(db_url, policy=with_trusted_generic(), clock=clock)
    with other.client:
        body = generic(clock.now - timedelta(hours=3), {"kind": "error_rate", "value": 0.07})
        r = other.post("/webhooks/alerts", body, headers={"Authorization": "Bearer obs-token"})
        assert r.status_code == 202
        row = incident(other)
    other.container.engine.dispose()
    assert row.severity == "P2"
    assert "(P2 threshold; firing for 3h as reported by obs; trusted timing)" in first_reason(row)


def test_a_four_hour_window_at_three_on_a_saturday_is_not_p2(db_url: str) -> None:
    clock = FakeClock(SATURDAY_3AM_BERLIN)
    signal = {"kind": "quality", "value": 0.5, "baseline": 0.9, "stddev": 0.1, "window": "4h"}
    body = generic(clock.now - timedelta(hours=4), signal, key="summarizer-quality")
    b = make_bot(db_url, policy=policy(), clock=clock)
    with b.client:
        assert b.post("/webhooks/alerts", body).status_code == 202
        row = incident(b)
        assert row.severity == "P3"
        assert "firing for 0s of business hours as seen by the bot" in first_reason(row)
        assert "window 4h as reported by default is the span of its value" in first_reason(row)
        # four business hours from Monday 09:00 in Berlin
        assert row.severity_review_at == MONDAY_1PM_BERLIN
        clock.now = MONDAY_1PM_BERLIN - timedelta(minutes=1)
        assert review(b) == 0
        clock.now = MONDAY_1PM_BERLIN
        assert review(b) == 1
        assert incident(b).severity == "P2"
    b.container.engine.dispose()


def test_the_same_window_from_a_trusted_source_is_p2_as_before(db_url: str) -> None:
    clock = FakeClock(SATURDAY_3AM_BERLIN)
    pol = with_trusted_generic()
    signal = {"kind": "quality", "value": 0.5, "baseline": 0.9, "stddev": 0.1, "window": "4h"}
    b = make_bot(db_url, policy=pol, clock=clock)
    with b.client:
        r = b.post(
            "/webhooks/alerts",
            generic(clock.now, signal, key="summarizer-quality"),
            headers={"Authorization": "Bearer obs-token"},
        )
        assert r.status_code == 202
        row = incident(b)
    b.container.engine.dispose()
    assert row.severity == "P2"
    assert "window 4h as reported by obs; trusted timing" in first_reason(row)


def test_alertmanager_starts_at_in_the_past_counts_from_the_bots_first_sight(
    bot: Bot, clock: FakeClock
) -> None:
    body = alertmanager([("worker-1", "firing", clock.now - timedelta(hours=3))])
    assert bot.post("/webhooks/alertmanager", body).status_code == 202
    row = incident(bot)
    assert row.severity == "P3"
    assert "as seen by the bot; sustained needs 2h" in first_reason(row)
    assert "window 2h as reported by default is the span of its value" in first_reason(row)
    assert seen_at(bot) == {"worker-1": clock.now}
    clock.advance(hours=2)
    assert review(bot) == 1
    assert incident(bot).severity == "P2"


def test_alertmanager_starts_at_from_a_trusted_source_counts(bot: Bot, clock: FakeClock) -> None:
    body = alertmanager([("worker-1", "firing", clock.now - timedelta(hours=3))])
    assert bot.post("/webhooks/alertmanager", body, headers=TRUSTED).status_code == 202
    row = incident(bot)
    assert row.severity == "P2"
    assert "as reported by prometheus; trusted timing" in first_reason(row)


def refire_one_of_two(bot: Bot, clock: FakeClock) -> tuple[datetime, datetime]:
    """Two alerts fire, one resolves and fires again an hour after the first sight."""
    start = clock.now
    both = [("worker-1", "firing", start), ("worker-2", "firing", start)]
    assert bot.post("/webhooks/alertmanager", alertmanager(both), headers=AUTH).status_code == 202
    clock.advance(minutes=30)
    one_resolved = [("worker-1", "resolved", start), ("worker-2", "firing", start)]
    assert bot.post("/webhooks/alertmanager", alertmanager(one_resolved)).status_code == 202
    clock.advance(minutes=30)
    # the sender keeps the first startsAt: only the bot's clock sees that it fired anew
    assert bot.post("/webhooks/alertmanager", alertmanager(both)).status_code == 202
    return start, clock.now


@pytest.mark.both_backends
def test_a_refired_alert_is_seen_again_from_when_it_refires(bot: Bot, clock: FakeClock) -> None:
    start, again = refire_one_of_two(bot, clock)
    assert seen_at(bot) == {"worker-1": again, "worker-2": start}


def test_a_refired_alert_counts_from_its_refire(bot: Bot, clock: FakeClock) -> None:
    start, _ = refire_one_of_two(bot, clock)
    clock.now = start + timedelta(hours=2)
    assert review(bot) == 1  # worker-2 has been seen firing for 2h
    row = incident(bot)
    assert row.severity == "P2"
    reasons = [str(r["text"]) for r in row.severity_reasons]
    assert any("firing for 2h as seen by the bot" in t for t in reasons)
    assert any("firing for 1h as seen by the bot" in t for t in reasons)


def test_sources_trust_no_timing_unless_the_policy_says_so() -> None:
    example = example_policy()
    assert {name: s.trusted_timing for name, s in example.sources.items()} == dict.fromkeys(
        example.sources, False
    )
    assert Source().trusted_timing is False
    assert Source.model_validate({"kind": "alertmanager", "trusted_timing": True}).trusted_timing
