"""POST /webhooks/handoffs and GET /handoffs/{id}: auth, tiers, idempotency, bad bodies, storage."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from storage.db import session_scope
from storage.models import HandoffRow, OutboxRow
from tests.conftest import AUTH, Bot, make_bot
from tests.support.handoffs import agent_headers, encoded, handoff_body


def rows(bot: Bot) -> list[HandoffRow]:
    with Session(bot.container.engine) as s:
        return list(s.exec(select(HandoffRow).order_by(HandoffRow.id)).all())  # type: ignore[arg-type]


def outbox_kinds(bot: Bot) -> list[str]:
    with Session(bot.container.engine) as s:
        return [r.kind for r in s.exec(select(OutboxRow).order_by(OutboxRow.id)).all()]  # type: ignore[arg-type]


def card_posts(bot: Bot) -> int:
    """Count the review card's first posts (its later refreshes, e.g. for the ticket, aside)."""
    with Session(bot.container.engine) as s:
        keys = [r.idempotency_key for r in s.exec(select(OutboxRow)).all()]
    return sum(1 for key in keys if key.startswith("handoff-card:") and key.endswith(":post"))


def test_a_low_confidence_handoff_is_queued_for_a_human_with_everything_stored(bot: Bot) -> None:
    r = bot.post("/webhooks/handoffs", handoff_body())
    assert r.status_code == 202, r.text
    assert r.json() == {"handoff_id": "HO-1", "tier": "human", "status": "queued"}
    [row] = rows(bot)
    assert row.source == "default"
    assert (row.agent_id, row.agent_version, row.reason) == (
        "support-bot",
        "2.3.1",
        "low_confidence",
    )
    assert row.request["text"].startswith("Hi, I was charged twice")
    assert row.proposed_action == {"name": "refund", "args": {"order": "1234", "amount_eur": 49.0}}
    assert row.suggested_actions == ["check the order in billing", "refund one charge only"]
    assert row.ai_context["gen_ai.request.model"] == "gpt-4o"
    assert row.ai_context["agent.id"] == "support-bot" and row.ai_context["confidence"] == 0.62
    assert row.confidence_band == "0.60-0.65"
    assert (
        row.claim_due_at == bot.clock.now + bot.container.policy.handoffs.sla["human"].time_to_claim
    )
    assert "handoff.card" in outbox_kinds(bot)


@pytest.mark.parametrize(
    ("overrides", "tier", "status"),
    [
        ({"confidence": 0.95}, "auto", "recorded"),
        ({"confidence": 0.9499}, "review", "queued"),
        ({"confidence": 0.80}, "review", "queued"),
        ({"confidence": 0.7999}, "human", "queued"),
        (
            {"confidence": 0.99, "reason": "tool_error", "error": {"type": "Timeout"}},
            "human",
            "queued",
        ),
    ],
)
def test_tiers_over_http(bot: Bot, overrides: dict[str, Any], tier: str, status: str) -> None:
    r = bot.post("/webhooks/handoffs", handoff_body(**overrides))
    assert r.status_code == 202 and r.json()["tier"] == tier and r.json()["status"] == status


def test_auto_tier_is_stored_and_counted_without_a_card(bot: Bot) -> None:
    r = bot.post("/webhooks/handoffs", handoff_body(confidence=0.97))
    assert r.json() == {"handoff_id": "HO-1", "tier": "auto", "status": "recorded"}
    assert len(rows(bot)) == 1
    assert outbox_kinds(bot) == []
    metrics = bot.client.get("/metrics").text
    assert 'ai_incident_handoffs_received_total{outcome="new",tier="auto"} 1.0' in metrics


def test_every_handoff_of_a_paused_workflow_goes_to_a_human(bot: Bot) -> None:
    with session_scope(bot.container.engine) as s:
        bot.container.killswitch.pause(s, workflow="support-chatbot", actor="U0ALICE001")
    r = bot.post("/webhooks/handoffs", handoff_body(confidence=0.99))
    assert r.json()["tier"] == "human"
    assert "paused" in rows(bot)[0].tier_reason
    other = bot.post(
        "/webhooks/handoffs", handoff_body("k2", workflow="email-summarizer", confidence=0.99)
    )
    assert other.json()["tier"] == "auto"


def test_a_retry_answers_the_same_handoff_and_stores_nothing_twice(bot: Bot) -> None:
    first = bot.post("/webhooks/handoffs", handoff_body())
    again = bot.post("/webhooks/handoffs", handoff_body())
    assert first.status_code == 202 and again.status_code == 200
    assert again.json() == first.json()
    assert len(rows(bot)) == 1
    assert card_posts(bot) == 1
    metrics = bot.client.get("/metrics").text
    assert 'ai_incident_handoffs_received_total{outcome="duplicate",tier="human"} 1.0' in metrics


@pytest.mark.both_backends
def test_concurrent_duplicates_make_one_handoff(bot: Bot) -> None:
    answers: list[Any] = []
    barrier = threading.Barrier(4)

    def send() -> None:
        barrier.wait()
        answers.append(bot.post("/webhooks/handoffs", handoff_body("same-key")))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 202]
    assert {a.json()["handoff_id"] for a in answers} == {"HO-1"}
    assert len(rows(bot)) == 1
    assert card_posts(bot) == 1


def test_a_signed_handoff_is_accepted_as_the_agents_source(bot: Bot) -> None:
    raw = encoded(handoff_body())
    r = bot.client.post("/webhooks/handoffs", content=raw, headers=agent_headers(raw))
    assert r.status_code == 202, r.text
    assert rows(bot)[0].source == "agents"
    pinned = encoded(handoff_body("k2"))
    r = bot.client.post(
        "/webhooks/handoffs?source=agents", content=pinned, headers=agent_headers(pinned)
    )
    assert r.status_code == 202


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        (lambda raw: agent_headers(raw, secret="wrong"), "does not match"),
        (lambda raw: agent_headers(raw + b" "), "does not match"),
        (lambda raw: agent_headers(raw, at=int(time.time()) - 301), "away from now"),
        (lambda raw: agent_headers(raw, at=int(time.time()) + 400), "away from now"),
        (
            lambda raw: {
                "Content-Type": "application/json",
                "X-AI-Incident-Signature": "v1=abc",
            },
            "t=<unix>",
        ),
        (lambda raw: {"Content-Type": "application/json"}, "missing bearer token"),
        (
            lambda raw: {"Content-Type": "application/json", "Authorization": "Bearer nope"},
            "bearer",
        ),
    ],
    ids=["wrong-secret", "other-body", "stale", "future", "malformed", "no-auth", "bad-token"],
)
def test_bad_auth_is_401_and_stores_nothing(bot: Bot, headers: Any, why: str) -> None:
    raw = encoded(handoff_body())
    r = bot.client.post("/webhooks/handoffs", content=raw, headers=headers(raw))
    assert r.status_code == 401 and why in r.json()["error"], r.text
    assert rows(bot) == []


def test_a_signature_for_the_wrong_pinned_source_is_refused(bot: Bot) -> None:
    raw = encoded(handoff_body())
    r = bot.client.post(
        "/webhooks/handoffs?source=grafana", content=raw, headers=agent_headers(raw)
    )
    assert r.status_code == 401
    assert rows(bot) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.pop("idempotency_key"), "idempotency_key"),
        (lambda b: b.update(reason="bored"), "reason"),
        (lambda b: b.update(confidence=1.5), "confidence"),
        (lambda b: b.pop("confidence"), "confidence"),
        (lambda b: b.update(callback_url="ftp://agent.example/x"), "callback_url"),
        (lambda b: b.update(request={"text": 5}), "request.text"),
        (lambda b: b.update(proposed_action={"args": {}}), "proposed_action.name"),
        (lambda b: b.update(suggested_actions="do it"), "suggested_actions"),
        (lambda b: b.update(context=[1, 2]), "context"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(bot: Bot, change: Any, field: str) -> None:
    body = handoff_body()
    change(body)
    r = bot.post("/webhooks/handoffs", body)
    assert r.status_code == 422, r.text
    assert r.json()["fields"][0]["field"] == field
    assert field in r.json()["error"]
    assert rows(bot) == []


def test_not_json_is_422_and_too_large_is_413(bot: Bot) -> None:
    r = bot.client.post("/webhooks/handoffs", content=b"{nope", headers=AUTH)
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "(body)"
    big = handoff_body(attempted_response="x" * (1024 * 1024))
    assert bot.post("/webhooks/handoffs", big).status_code == 413
    assert rows(bot) == []


@pytest.mark.both_backends
def test_storage_down_is_503_then_accepted_when_back(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b = make_bot(db_url)
    with b.client:
        if db_url.startswith("sqlite"):
            broken = sa.create_engine(f"sqlite:///{tmp_path}/missing/dir/x.db")
        else:
            broken = sa.create_engine(
                "postgresql+psycopg://postgres@127.0.0.1:1/none",
                connect_args={"connect_timeout": 1},
            )
        runner = b.container.handoffs
        assert runner is not None
        real = runner._engine
        runner._engine = broken
        r = b.post("/webhooks/handoffs", handoff_body())
        # no database host, port, path or driver message for the sender to read
        assert r.status_code == 503 and r.json() == {"error": "storage unavailable, retry later"}
        polled = b.client.get("/handoffs/HO-1", headers=AUTH)
        assert polled.status_code == 503
        assert polled.json() == {"error": "storage unavailable, retry later"}
        # the operator finds the reason in the log
        logged = [r.getMessage() for r in caplog.records if r.name == "handlers.storage_errors"]
        reason = "127.0.0.1" if db_url.startswith("postgres") else "unable to open database file"
        assert any(
            m.startswith("/webhooks/handoffs answered 503") and reason in m for m in logged
        ), logged
        assert any(m.startswith("/handoffs/{id} answered 503") for m in logged), logged
        runner._engine = real
        assert b.post("/webhooks/handoffs", handoff_body()).status_code == 202
    broken.dispose()
    b.container.engine.dispose()


def test_polling_a_handoff(bot: Bot) -> None:
    bot.post("/webhooks/handoffs", handoff_body(callback_url="http://127.0.0.1:9/decisions"))
    assert bot.client.get("/handoffs/HO-1").status_code == 401
    assert (
        bot.client.get("/handoffs/HO-1", headers={"Authorization": "Bearer no"}).status_code == 401
    )
    assert bot.client.get("/handoffs/HO-9", headers=AUTH).status_code == 404
    assert bot.client.get("/handoffs/INC-1", headers=AUTH).status_code == 404
    r = bot.client.get("/handoffs/HO-1", headers=AUTH)
    assert r.status_code == 200
    state = r.json()
    assert (
        state["handoff_id"] == "HO-1" and state["status"] == "queued" and state["tier"] == "human"
    )
    assert state["decision"] is None and state["claimed_by"] is None
    assert state["received_at"] == "2026-11-23T10:00:00Z"
    assert state["sla"]["claim_by"] == "2026-11-23T10:15:00Z"
    assert state["callback"] == {"url": "http://127.0.0.1:9/decisions", "delivered_at": None}
    assert bot.client.get("/handoffs/1", headers=AUTH).status_code == 200
    # an alert source's token reads no handoffs (tests/handlers/test_auth.py has the rest)
    source = {"Authorization": "Bearer change-me-llm-obs"}
    assert bot.client.get("/handoffs/1", headers=source).status_code == 401


def test_openapi_documents_the_handoff_endpoints(bot: Bot) -> None:
    spec = bot.client.get("/openapi.json").json()
    paths = spec["paths"]
    post = paths["/webhooks/handoffs"]["post"]
    assert {"200", "202", "401", "413", "422", "503"} <= set(post["responses"])
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/HandoffBody"}
    assert "idempotency_key" in spec["components"]["schemas"]["HandoffBody"]["properties"]
    assert {"200", "401", "404", "503"} <= set(paths["/handoffs/{handoff_id}"]["get"]["responses"])


def test_local_mode_prints_the_review_card_and_its_thread(bot: Bot) -> None:
    def printed(text: str) -> str:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            bot.container.deliver_due()
            if text in bot.console.getvalue():
                return bot.console.getvalue()
            time.sleep(0.05)
        raise AssertionError(f"{text!r} was not printed")

    bot.post("/webhooks/handoffs", handoff_body(request={"summary": "Refund <!here>"}))
    out = printed("handoff for review")
    assert "=== [slack C0REVIEWS01] handoff for review ===\nHO-1 [human] Refund <!here>" in out
    assert "status: queued" in out
    runner = bot.container.handoffs
    assert runner is not None
    assert runner.claim(handoff_id=1, user="U0BOB00002").ok
    printed("HO-1 claimed by U0BOB00002 until 2026-11-23 10:15 UTC.")
    out = printed("handoff card updated")
    assert "status: claimed by U0BOB00002" in out.split("handoff card updated")[1]


def test_a_handoff_naming_no_or_an_unknown_workflow_is_kept(bot: Bot) -> None:
    body = handoff_body("no-workflow")
    body.pop("workflow")
    assert bot.post("/webhooks/handoffs", body).status_code == 202
    assert (
        bot.post("/webhooks/handoffs", handoff_body("ghost", workflow="ghost")).status_code == 202
    )
    first, second = rows(bot)
    assert first.workflow == bot.container.policy.default_workflow
    assert second.workflow == "ghost" and second.tier == "human"
    runner = bot.container.handoffs
    assert runner is not None
    view = runner.view(second.id or 0)
    assert view is not None and not view.workflow_known
