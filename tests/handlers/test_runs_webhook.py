"""`POST /webhooks/runs`: one run or a batch, each kept or refused on its own, once per run_id."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session

from bot.config import Source, Workflow
from bot.domain.watch.policy import WorkflowWatch
from storage import watch
from tests.conftest import AUTH, Bot, example_policy, make_bot


@pytest.fixture
def rbot(db_url: str) -> Iterator[Bot]:
    policy = example_policy()
    workflows = dict(policy.workflows)
    workflows["support-bot"] = workflows.get("support-bot", Workflow()).model_copy(
        update={"watch": WorkflowWatch(alias=["support-agent-prod"])}
    )
    sources = dict(policy.sources)
    sources["n8n"] = Source(kind="telemetry", token="n8n-telemetry-token-0123456789")
    sources["am-only"] = Source(kind="alertmanager", token="am-only-token-0123456789")
    b = make_bot(
        db_url, policy=policy.model_copy(update={"workflows": workflows, "sources": sources})
    )
    with b.client:
        yield b
    b.container.engine.dispose()


def tallies(bot: Bot) -> dict[str, Any]:
    with Session(bot.container.engine) as session:
        found = watch.slots(session, since=0, until=10**9)
    merged: dict[str, Any] = {}
    for slot in found:
        merged.setdefault(slot.workflow, []).append(slot.tally)
    return merged


def run(run_id: str, **kw: Any) -> dict[str, Any]:
    return {"workflow": "support-bot", "run_id": run_id, **kw}


@pytest.mark.both_backends
def test_a_batch_is_kept_and_a_repeat_changes_nothing(rbot: Bot) -> None:
    now = rbot.clock.now
    batch = {
        "runs": [
            run("r1", status="ok", latency_ms=800, tokens_in=1200, tokens_out=300, cost_usd=0.012,
                confidence=0.91, model="gpt-4o", prompt_version="v12"),
            run("r2", status="error", latency_ms=30000, error="upstream timeout", at=(now - timedelta(minutes=3)).isoformat()),
            run("r3", status="REFUSAL", handed_off=True),
        ]
    }  # fmt: skip
    first = rbot.post("/webhooks/runs", batch)
    assert first.status_code == 202, first.text
    assert first.json() == {
        "status": "accepted",
        "accepted": 3,
        "duplicates": 0,
        "rejected": 0,
        "problems": [],
    }
    again = rbot.post("/webhooks/runs", batch)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert again.json()["duplicates"] == 3
    (now_tally, earlier) = sorted(tallies(rbot)["support-bot"], key=lambda t: -t.runs)
    assert (now_tally.runs, now_tally.refusals, now_tally.handoffs) == (2, 1, 1)
    assert (now_tally.tokens_in, now_tally.tokens_out) == (1200, 300)
    assert (earlier.runs, earlier.errors, earlier.latency_max_ms) == (1, 1, 30000)


def test_one_run_alone_and_an_alias_name_the_workflow(rbot: Bot) -> None:
    r = rbot.post(
        "/webhooks/runs", {"workflow": "support-agent-prod", "run_id": "x", "latency_ms": 5}
    )
    assert r.status_code == 202 and r.json()["accepted"] == 1
    assert list(tallies(rbot)) == ["support-bot"]


def test_a_bad_run_is_422_in_the_answer_and_the_others_are_kept(rbot: Bot) -> None:
    now = rbot.clock.now
    r = rbot.post(
        "/webhooks/runs",
        {
            "runs": [
                run("ok-1"),
                run("bad-status", status="exploded"),
                run("too-old", at=(now - timedelta(days=36)).isoformat()),
                run("future", at=(now + timedelta(minutes=6)).isoformat()),
                {"run_id": "no-workflow"},
                run("ok-2", at=(now + timedelta(minutes=4)).isoformat()),
            ]
        },
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["status"], body["accepted"], body["rejected"]) == ("partial", 2, 4)
    problems = {p["index"]: p for p in body["problems"]}
    assert sorted(problems) == [1, 2, 3, 4]
    assert problems[1]["field"] == "runs.1.status" and problems[1]["status"] == 422
    assert problems[2]["field"] == "runs.2.at" and "older than the 35-day" in problems[2]["message"]
    assert "5 minutes in the future" in problems[3]["message"]
    assert problems[4]["field"] == "runs.4.workflow" and problems[4]["run_id"] == "no-workflow"
    assert sum(t.runs for t in tallies(rbot)["support-bot"]) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "(body)"),
        (b"[1, 2]", "(body)"),
        (b'{"runs": []}', "runs"),
        (b'{"runs": {"a": 1}}', "runs"),
        (b'{"runs": [{"workflow": "w"}]}', "runs.0.run_id"),
        (b'{"workflow": "w", "run_id": "r", "latency_ms": -1}', "latency_ms"),
        (b'{"workflow": "w", "run_id": "r", "confidence": 1.5}', "confidence"),
        (b"[" * 5000 + b"]" * 5000, "(body)"),
    ],
)
def test_a_body_with_no_run_to_keep_is_422_naming_the_field(
    rbot: Bot, body: bytes, field: str
) -> None:
    r = rbot.client.post(
        "/webhooks/runs", content=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text
    assert r.json()["fields"][0]["field"] == field
    assert tallies(rbot) == {}


def test_more_than_a_thousand_runs_is_422(rbot: Bot) -> None:
    r = rbot.post("/webhooks/runs", {"runs": [run(f"r{i}") for i in range(1001)]})
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "runs"
    assert (
        rbot.post("/webhooks/runs", {"runs": [run(f"r{i}") for i in range(1000)]}).json()[
            "accepted"
        ]
        == 1000
    )


def test_auth_and_size_are_checked_first(rbot: Bot) -> None:
    assert rbot.post("/webhooks/runs", run("a"), headers={}).status_code == 401
    assert (
        rbot.post("/webhooks/runs", run("a"), headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    # an alert source's token cannot post runs; a telemetry source's can
    am = {"Authorization": "Bearer am-only-token-0123456789"}
    assert rbot.post("/webhooks/runs", run("a"), headers=am).status_code == 401
    n8n = {"Authorization": "Bearer n8n-telemetry-token-0123456789"}
    assert rbot.post("/webhooks/runs", run("a"), headers=n8n).status_code == 202
    big = {"runs": [run(f"r{i}", error="x" * 5000) for i in range(300)]}
    assert rbot.post("/webhooks/runs", big).status_code == 413
    assert tallies(rbot)["support-bot"][0].runs == 1


def test_storage_down_is_503_and_nothing_is_half_kept(rbot: Bot) -> None:
    rbot.container.pipeline.stop()
    r = rbot.post("/webhooks/runs", run("a"))
    assert r.status_code == 503 and "error" in r.json()
    rbot.container.pipeline.start()
    assert rbot.post("/webhooks/runs", run("a")).status_code == 202


def test_counts_show_on_metrics(rbot: Bot) -> None:
    rbot.post("/webhooks/runs", {"runs": [run("a"), run("a"), run("b", status="nope")]})
    text = rbot.client.get("/metrics").text
    assert 'ai_incident_runs_ingested_total{outcome="new"} 1.0' in text
    assert 'ai_incident_runs_ingested_total{outcome="duplicate"} 1.0' in text
    assert 'ai_incident_runs_ingested_total{outcome="rejected"} 1.0' in text
    assert 'ai_incident_webhook_requests_total{endpoint="runs",status="202"} 1.0' in text


def test_gzip_is_not_an_encoding_this_route_reads(rbot: Bot) -> None:
    # the runs route takes plain JSON; a compressed body is not JSON and says so
    r = rbot.client.post(
        "/webhooks/runs",
        content=gzip.compress(b'{"workflow": "w", "run_id": "r"}'),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert r.status_code == 422


@pytest.mark.both_backends
def test_a_nul_in_a_text_field_is_kept_as_a_replacement_character(rbot: Bot) -> None:
    r = rbot.post("/webhooks/runs", {"runs": [run("nul\u0000id", model="gpt\u00004o", error="x")]})
    assert r.status_code == 202, r.text
    with Session(rbot.container.engine) as session:
        assert [v.value for v in watch.versions(session)] == ["gpt\ufffd4o"]


def test_a_shorter_run_id_window_refuses_what_it_could_not_tell_from_a_repeat(db_url: str) -> None:
    policy = example_policy()
    watch_policy = policy.watch.model_copy(
        update={
            "retention": policy.watch.retention.model_copy(update={"run_ids": timedelta(days=2)})
        }
    )
    b = make_bot(db_url, policy=policy.model_copy(update={"watch": watch_policy}))
    with b.client:
        now = b.clock.now
        r = b.post(
            "/webhooks/runs",
            {
                "runs": [
                    run("new", at=(now - timedelta(days=1)).isoformat()),
                    run("old", at=(now - timedelta(days=3)).isoformat()),
                ]
            },
        )
    b.container.engine.dispose()
    assert r.status_code == 202 and r.json()["accepted"] == 1
    (problem,) = r.json()["problems"]
    assert problem["field"] == "runs.1.at"
    assert (
        "older than 2 days, the window in which a repeated run_id is recognised"
        in problem["message"]
    )
