"""Every renderer takes untrusted text only through `SafeText` (§7), proved by walking them all.

`RENDERERS` runs each public function of each module that builds outgoing payloads — Slack blocks
and text, DMs, Jira tickets and comments, pager and webhook bodies, agent callbacks, exports —
with hostile text in every field a sender, an agent or a person fills, and checks what comes out
for the kind of destination it is. A public function that is neither walked nor listed in
`NO_UNTRUSTED_TEXT` with the reason fails `test_every_renderer_is_walked`, so a new renderer
cannot slip past. The same checks run end to end against the stand-ins in
tests/integration/test_hostile_text.py.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import bot.handoffs.callback_delivery
import bot.paging.delivery
import bot.paging.providers.opsgenie
import bot.paging.providers.pagerduty
import bot.paging.providers.webhook
import bot.rendering.cards
import bot.rendering.handoff_tickets
import bot.rendering.handoffs
import bot.rendering.pages
import bot.rendering.reports
import bot.rendering.tickets
import bot.rendering.watch_blocks
from bot.domain.digest import BandRate, Digest, IncidentFact, SeverityFigures, Week, WorkflowFigures
from bot.domain.redaction import Redactor, SafeText
from bot.domain.views import AlertView, IncidentView, JournalView, PageView
from bot.domain.watch.figures import WatchFigures
from bot.handoffs.domain import Decision, HandoffStatus, HandoffView, Tier
from bot.rendering.reports import Section
from storage.models import IncidentRow
from tests.support.hostile import Leaks, hostile_texts, walk_strings

SAFE = SafeText(Redactor())
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

RENDERER_MODULES: list[ModuleType] = [
    bot.rendering.cards,
    bot.rendering.handoffs,
    bot.rendering.tickets,
    bot.rendering.handoff_tickets,
    bot.rendering.pages,
    bot.rendering.reports,
    bot.rendering.watch_blocks,
    bot.paging.delivery,
    bot.paging.providers.pagerduty,
    bot.paging.providers.opsgenie,
    bot.paging.providers.webhook,
    bot.handoffs.callback_delivery,
]

# Public functions that take no text from outside, with why.
NO_UNTRUSTED_TEXT = {
    "bot.rendering.cards.declare_modal": "workflow names from the policy file, a channel id from Slack",
    "bot.rendering.pages.mention_text": "Slack ids from the policy file (non-alphanumeric dropped)",
    "bot.rendering.tickets.dedup_label": "the bot's own incident id",
    "bot.rendering.tickets.comment_body": "markup already made safe by the caller, and an id",
    "bot.rendering.handoff_tickets.handoff_dedup_label": "the bot's own handoff id",
    "bot.rendering.handoff_tickets.within_lines": "joins lines already made safe",
    "bot.paging.providers.webhook.sign": "signs bytes already rendered",
    "bot.paging.providers.pagerduty.build": "builds the adapter from settings; renders nothing",
    "bot.paging.providers.opsgenie.build": "builds the adapter from settings; renders nothing",
    "bot.paging.providers.webhook.build": "builds the adapter from settings; renders nothing",
    "bot.handoffs.callback_delivery.callback_secret": "picks a secret from the policy; renders nothing",
    "bot.handoffs.callback_delivery.encode": "serialises a body `decision_body` made safe",
}


# -- hostile inputs ------------------------------------------------------------------------------


@dataclass
class World:
    """One example's hostile views, built from hostile strings."""

    incident: IncidentView
    handoff: HandoffView
    row: IncidentRow
    digest: Digest
    texts: list[str]
    watch: WatchFigures


@st.composite
def worlds(draw: st.DrawFn, leaks: Leaks) -> World:
    h = hostile_texts(leaks)
    t = [draw(h) for _ in range(14)]
    alert = AlertView(
        fingerprint=t[0],
        status="firing",
        title=t[1],
        description=t[2],
        labels={"team": t[3], t[4]: "x", "api_key": "hunter2hunter2"},
        annotations={"summary": t[5], "runbook_url": t[6]},
        links=[{"title": t[7], "url": "https://runbooks.example.com/x"}, {"title": t[8]}],
        values={"A": 0.3},
        signal={"kind": "error_rate", "value": 0.3, "note": t[9]},
        starts_at=NOW,
        ends_at=None,
        first_seen_at=NOW,
    )
    incident = IncidentView(
        id=7,
        public_id="INC-7",
        title=t[10],
        workflow=t[11],
        category="internal",
        severity="P1",
        severity_reasons=[{"severity": "P1", "rule": "r1", "text": t[12]}],
        state="triggered",
        source=t[13],
        commander=t[0],
        ai_context={"request_id": t[1], "gen_ai.request.model": t[2], "prompt_version": t[3]},
        jira_key=t[4],
        jira_url=t[5],
        slack_channel="C0SUMMARY01",
        slack_ts="1700000000.000100",
        root_cause=t[6],
        resolved_by=t[7],
        milestones={"triggered": NOW, "acknowledged": NOW + timedelta(minutes=3)},
        alerts=[alert],
        journal=[
            JournalView(1, "action", t[8], t[9], "slack", NOW, NOW, t[10]),
            JournalView(2, "decision", t[11], t[12], "slack", NOW, None, None, NOW),
        ],
        resolution_summary=t[13],
        pages=[PageView(t[0], "pagerduty", t[1], "failed", t[2], NOW, None)],
    )
    decision = draw(st.sampled_from([None, *Decision]))
    handoff = HandoffView(
        id=3,
        public_id="HO-3",
        idempotency_key=t[0],
        source="agents",
        workflow=t[1],
        agent_id=t[2],
        agent_version=t[3],
        reason=t[4],
        confidence=0.62,
        confidence_band="0.60-0.65",
        tier=Tier.HUMAN,
        tier_reason=t[5],
        status=HandoffStatus(decision.value) if decision else HandoffStatus.CLAIMED,
        request={"summary": t[6], "text": t[7], "user": t[8], "channel": t[9]},
        attempted_response=t[10],
        error={"type": t[11], "message": t[12]},
        suggested_actions=[t[13], t[0]],
        proposed_action={"name": t[1], "args": {"note": t[2], t[3]: 1, "token": "abc"}},
        context={"k": t[4], t[5]: [t[6]]},
        ai_context={"request_id": t[7], "trace_id": t[8]},
        callback_url=None,
        claimed_by=t[9],
        claimed_at=NOW,
        lease_until=NOW + timedelta(minutes=15),
        decision=decision,
        edited_output=t[10],
        reject_reason=t[11],
        decided_by=t[12],
        decided_at=NOW if decision else None,
        received_at=NOW,
        claim_due_at=NOW,
        decide_due_at=NOW + timedelta(hours=1),
        sla_claim_stage=0,
        sla_decide_stage=0,
        slack_channel=None,
        slack_ts=None,
        jira_key=t[13],
    )
    row = IncidentRow(
        id=7,
        title=t[0],
        workflow=t[1],
        category="internal",
        severity="P1",
        severity_reasons=[{"text": t[2]}],
        state="triggered",
        source="x",
        ai_context={"request_id": t[3], t[4]: t[5]},
        slack_channel="C0SUMMARY01",
        slack_ts="1700000000.000100",
    )
    fact = IncidentFact(7, t[6], t[7], "P3", "triggered", NOW)
    figures = WorkflowFigures(t[8], "internal", True, 12.0, 5.0, 0.3, 0.2, 1, 1, None, False)
    digest = Digest(
        week=Week(2026, 48),
        start=NOW,
        end=NOW + timedelta(days=7),
        generated_at=NOW,
        severities=[SeverityFigures("P1", 1, 0, None, None)],
        p3_incidents=[fact],
        open_incidents=[fact],
        overdue_incidents=[fact],
        workflows=[figures],
        handoffs_total=1,
        tier_mix={"human": 1},
        time_to_claim=(None, None),
        time_to_decide=(None, None),
        sla_breaches=0,
        bands=[BandRate(0.6, 0.65, 1, 0, 0, 1)],
        recommendations=[t[9]],
    )
    watch = WatchFigures(
        workflow=t[10],
        runs_last_hour=12,
        error_rate_10m=0.1,
        latency_p95_ms_1h=900.0,
        cost_per_run_1h=0.01,
        model=t[11],
        prompt_version=t[12],
        last_run_at=NOW,
        history_days=3,
        baseline_note=t[13],
    )
    return World(incident, handoff, row, digest, t, watch)


# -- the walk ------------------------------------------------------------------------------------

Check = Callable[[Leaks, str, Any], None]


def slack(leaks: Leaks, where: str, out: Any) -> None:
    for text in out if isinstance(out, list) else [out]:
        leaks.check_slack(where, text)


def blocks(leaks: Leaks, where: str, out: Any) -> None:
    leaks.check_blocks(where, out)


def jira(leaks: Leaks, where: str, out: Any) -> None:
    leaks.check_jira(where, out)


def markdown(leaks: Leaks, where: str, out: Any) -> None:
    leaks.check_markdown(where, out)


def plain(leaks: Leaks, where: str, out: Any) -> None:
    if isinstance(out, str):
        leaks.check_plain(where, out)
    for path, text in walk_strings(out):
        leaks.check_plain(f"{where}{path}", text)


def _page(w: World) -> Any:
    contact = {"person": "bob", "name": "Bob", "slack_id": "U0BOB00002", "email": "b@x.example"}
    return bot.paging.delivery.page_message(w.row, {"why": w.texts[6], "contact": contact}, SAFE)


def _thread_lines(w: World) -> list[dict[str, Any]]:
    t = w.texts
    base = {"actor": t[0], "until": NOW.isoformat()}
    return [
        {**base, "event": "claimed"},
        {**base, "event": "decided", "decision": "rejected", "reason": t[1]},
        {"event": "sla", "clock": "decide", "holder": t[2], "oncall": [t[3], "U0BOB00002"]},
        {"event": "sla", "clock": "claim", "action": "oncall", "oncall": [t[4]]},
        {"event": t[5]},
    ]


def _callback(w: World) -> dict[str, Any]:
    t = w.texts
    body = {
        "idempotency_key": "handoff-decision:HO-3",
        "decision": "approved",
        "output": t[0],
        "edited_output": t[1],
        "reason": t[2],
        "proposed_action": {"name": t[3], "args": {"note": t[4], t[5]: t[6]}},
    }
    return bot.handoffs.callback_delivery.decision_body(body, SAFE)


def _sections(w: World, esc: Callable[[str | None], str]) -> list[Section]:
    return bot.rendering.reports.postmortem_sections(w.incident, esc)


ZONE = ZoneInfo("Europe/Berlin")
PERMALINK = "https://example.slack.com/archives/C0REVIEWS01/p1700000000000100"
# name -> [(check, run)]: each run returns one payload of the kind its check reads
RENDERERS: dict[str, list[tuple[Check, Callable[[World], Any]]]] = {
    "bot.rendering.cards.card_blocks": [
        (blocks, lambda w: bot.rendering.cards.card_blocks(w.incident, SAFE)),
        (blocks, lambda w: bot.rendering.cards.card_blocks(w.incident, SAFE, last_hour=w.watch)),
    ],
    "bot.rendering.cards.card_text": [
        (slack, lambda w: bot.rendering.cards.card_text(w.incident, SAFE, slack=True)),
        (plain, lambda w: bot.rendering.cards.card_text(w.incident, SAFE)),
        (
            slack,
            lambda w: bot.rendering.cards.card_text(
                w.incident, SAFE, slack=True, last_hour=w.watch
            ),
        ),
    ],
    "bot.rendering.watch_blocks.watch_blocks": [
        (blocks, lambda w: bot.rendering.watch_blocks.watch_blocks([w.watch], SAFE.slack, ZONE))
    ],
    "bot.rendering.watch_blocks.watch_text": [
        (slack, lambda w: bot.rendering.watch_blocks.watch_text([w.watch], SAFE.slack, ZONE)),
        (plain, lambda w: bot.rendering.watch_blocks.watch_text([w.watch], SAFE.plain, ZONE)),
    ],
    "bot.rendering.watch_blocks.last_hour_line": [
        (slack, lambda w: bot.rendering.watch_blocks.last_hour_line(w.watch, SAFE.slack, ZONE)),
    ],
    "bot.rendering.cards.journal_text": [
        (
            slack,
            lambda w: bot.rendering.cards.journal_text(w.incident.journal[0], SAFE, slack=True),
        ),
        (
            plain,
            lambda w: bot.rendering.cards.journal_text(w.incident.journal[1], SAFE, slack=False),
        ),
    ],
    "bot.rendering.cards.export_json": [
        (plain, lambda w: bot.rendering.cards.export_json(w.incident, SAFE))
    ],
    "bot.rendering.cards.export_markdown": [
        (markdown, lambda w: bot.rendering.cards.export_markdown(w.incident, SAFE))
    ],
    "bot.rendering.handoffs.handoff_card_blocks": [
        (blocks, lambda w: bot.rendering.handoffs.handoff_card_blocks(w.handoff, SAFE, NOW))
    ],
    "bot.rendering.handoffs.handoff_card_text": [
        (
            slack,
            lambda w: bot.rendering.handoffs.handoff_card_text(w.handoff, SAFE, NOW, slack=True),
        ),
        (plain, lambda w: bot.rendering.handoffs.handoff_card_text(w.handoff, SAFE, NOW)),
    ],
    "bot.rendering.handoffs.queue_text": [
        (slack, lambda w: bot.rendering.handoffs.queue_text([w.handoff], 3, SAFE, NOW))
    ],
    "bot.rendering.handoffs.edit_modal": [
        (blocks, lambda w: bot.rendering.handoffs.edit_modal(w.handoff, SAFE, "C0REVIEWS01"))
    ],
    "bot.rendering.handoffs.reject_modal": [
        (blocks, lambda w: bot.rendering.handoffs.reject_modal(w.handoff, SAFE, None))
    ],
    "bot.rendering.handoffs.thread_text": [
        (
            slack,
            lambda w: [
                bot.rendering.handoffs.thread_text("HO-3", x, SAFE, slack=True)
                for x in _thread_lines(w)
            ],
        ),
        (
            plain,
            lambda w: [
                bot.rendering.handoffs.thread_text("HO-3", x, SAFE, slack=False)
                for x in _thread_lines(w)
            ],
        ),
    ],
    "bot.rendering.tickets.ticket_summary": [
        (plain, lambda w: bot.rendering.tickets.ticket_summary(w.incident, SAFE))
    ],
    "bot.rendering.tickets.ticket_labels": [
        (plain, lambda w: bot.rendering.tickets.ticket_labels(w.incident, SAFE, ["x"]))
    ],
    "bot.rendering.tickets.ticket_description": [
        (
            jira,
            lambda w: bot.rendering.tickets.ticket_description(
                w.incident, SAFE, thread_link="https://example.slack.com/archives/C1/p1"
            ),
        )
    ],
    "bot.rendering.tickets.wiki_link": [
        (jira, lambda w: bot.rendering.tickets.wiki_link(w.texts[0], w.texts[1], SAFE)),
        (jira, lambda w: bot.rendering.tickets.wiki_link(w.texts[2], "https://ok.example/", SAFE)),
    ],
    "bot.rendering.handoff_tickets.handoff_summary": [
        (plain, lambda w: bot.rendering.handoff_tickets.handoff_summary(w.handoff, SAFE))
    ],
    "bot.rendering.handoff_tickets.handoff_labels": [
        (
            plain,
            lambda w: bot.rendering.handoff_tickets.handoff_labels(
                w.handoff, SAFE, category="internal"
            ),
        )
    ],
    "bot.rendering.handoff_tickets.handoff_description": [
        (
            jira,
            lambda w: bot.rendering.handoff_tickets.handoff_description(
                w.handoff, SAFE, category=None, card_link=PERMALINK
            ),
        )
    ],
    "bot.rendering.handoff_tickets.handoff_decision_comment": [
        (
            jira,
            lambda w: (
                bot.rendering.handoff_tickets.handoff_decision_comment(
                    w.handoff, SAFE, decided_by=w.texts[4]
                )
                if w.handoff.decision
                else ""
            ),
        )
    ],
    "bot.rendering.pages.dm_text": [(slack, lambda w: bot.rendering.pages.dm_text(_page(w), SAFE))],
    "bot.rendering.pages.dm_blocks": [
        (blocks, lambda w: bot.rendering.pages.dm_blocks(_page(w), SAFE))
    ],
    "bot.rendering.reports.timeline_lines": [
        (slack, lambda w: "\n".join(bot.rendering.reports.timeline_lines(w.incident, SAFE.slack))),
        (jira, lambda w: "\n".join(bot.rendering.reports.timeline_lines(w.incident, SAFE.jira))),
    ],
    "bot.rendering.reports.postmortem_sections": [
        (plain, lambda w: [s.lines for s in _sections(w, SAFE.plain)])
    ],
    "bot.rendering.reports.render_slack": [
        (slack, lambda w: bot.rendering.reports.render_slack("T", _sections(w, SAFE.slack)))
    ],
    "bot.rendering.reports.render_jira": [
        (jira, lambda w: bot.rendering.reports.render_jira("T", _sections(w, SAFE.jira)))
    ],
    "bot.rendering.reports.render_markdown": [
        (
            markdown,
            lambda w: bot.rendering.reports.render_markdown("T", _sections(w, SAFE.markdown)),
        )
    ],
    "bot.rendering.reports.digest_text": [
        (slack, lambda w: bot.rendering.reports.digest_text(w.digest, SAFE.slack, ZONE)),
        (
            plain,
            lambda w: bot.rendering.reports.digest_text(w.digest, SAFE.plain, ZONE, slack=False),
        ),
    ],
    "bot.paging.delivery.page_message": [(plain, lambda w: asdict(_page(w)))],
    "bot.paging.providers.pagerduty.pagerduty_event": [
        (plain, lambda w: bot.paging.providers.pagerduty.pagerduty_event("K", "trigger", _page(w)))
    ],
    "bot.paging.providers.opsgenie.opsgenie_alert": [
        (plain, lambda w: bot.paging.providers.opsgenie.opsgenie_alert(_page(w)))
    ],
    "bot.paging.providers.webhook.webhook_body": [
        (plain, lambda w: bot.paging.providers.webhook.webhook_body("page", _page(w), "k"))
    ],
    "bot.handoffs.callback_delivery.decision_body": [(plain, _callback)],
}


def _public_functions(module: ModuleType) -> set[str]:
    names = getattr(module, "__all__", [])
    return {
        f"{module.__name__}.{name}"
        for name in names
        if inspect.isfunction(getattr(module, name))
        and getattr(module, name).__module__ == module.__name__
    }


def test_every_renderer_is_walked() -> None:
    public = set().union(*(_public_functions(m) for m in RENDERER_MODULES))
    unknown = public - set(RENDERERS) - set(NO_UNTRUSTED_TEXT)
    assert not unknown, f"walk these renderers with hostile text in RENDERERS: {sorted(unknown)}"
    gone = set(RENDERERS) - public
    assert not gone, f"these are no longer public renderers: {sorted(gone)}"


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # a failure names the renderer, the field and the secret; shrinking many texts takes minutes
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(st.data())
def test_no_renderer_lets_untrusted_text_out_unsafe(data: st.DataObject) -> None:
    leaks = Leaks()
    world = data.draw(worlds(leaks))
    for name, runs in RENDERERS.items():
        for i, (check, run) in enumerate(runs):
            out = run(world)
            check(leaks, f"{name}#{i}", json.loads(json.dumps(out)) if check is plain else out)
