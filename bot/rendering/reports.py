"""Pure reports from an incident's record: the timeline and the postmortem draft (§13).

The draft follows the runbooks' template — summary, impact, timeline, what was tried, root cause,
prompt version, model version, external API changes, follow-ups — filled from the incident, its
alerts and its journal; what the record cannot know is marked for a human to fill in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.domain.digest import Digest
from bot.domain.views import IncidentView, JournalView
from bot.rendering.changes import BEFORE_INCIDENT, changes_text

__all__ = [
    "GAP",
    "Section",
    "digest_text",
    "postmortem_sections",
    "render_jira",
    "render_markdown",
    "render_slack",
    "timeline_lines",
]

GAP = "TO FILL IN"
_UTC = ZoneInfo("UTC")

Escape = Callable[[str | None], str]


@dataclass(frozen=True)
class Section:
    title: str
    lines: list[str]


def _ts(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days} d"] if days else []
    if hours:
        parts.append(f"{hours} h")
    parts.append(f"{minutes} min")
    return " ".join(parts)


def _gap(what: str) -> str:
    return f"[{GAP}: {what}]"


def _entry(j: JournalView, esc: Escape) -> str:
    kind = j.kind.replace("_", " ")
    text = esc(j.text)
    if j.deleted_at is not None:
        return (
            f"{_ts(j.created_at)} · {kind} · {esc(j.author)}: (deleted {_ts(j.deleted_at)}) {text}"
        )
    edited = (
        f" (edited {_ts(j.edited_at)}; before: {esc(j.previous_text)})"
        if j.edited_at is not None
        else ""
    )
    return f"{_ts(j.created_at)} · {kind} · {esc(j.author)}: {text}{edited}"


def timeline_lines(view: IncidentView, esc: Escape) -> list[str]:
    """Return the milestones and every journal entry in time order, one line each."""
    events: list[tuple[datetime, int, str]] = []
    for name, at in view.milestones.items():
        if at is not None:
            events.append((at, 0, f"{_ts(at)} · milestone · {name.replace('_', ' ')}"))
    for j in view.journal:
        events.append((j.created_at, 1, _entry(j, esc)))
    events.sort(key=lambda e: (e[0], e[1]))
    return [line for _, _, line in events]


def _context(view: IncidentView, key: str) -> str | None:
    value = view.ai_context.get(key)
    return str(value) if value not in (None, "") else None


def postmortem_sections(view: IncidentView, esc: Escape) -> list[Section]:
    """Return the postmortem draft's sections, filled from the record, gaps marked."""
    m = view.milestones
    triggered, resolved = m.get("triggered"), m.get("resolved")
    acknowledged = m.get("acknowledged")
    summary = [
        f"{view.public_id} {esc(view.title)} — {view.severity}, {view.state}, workflow "
        f"{esc(view.workflow)} ({view.category}).",
        "Why " + view.severity + ": " + "; ".join(esc(r["text"]) for r in view.severity_reasons),
    ]
    if triggered and acknowledged:
        summary.append(f"Acknowledged after {_duration(acknowledged - triggered)}.")
    if triggered and resolved:
        summary.append(f"Resolved after {_duration(resolved - triggered)}.")
    summary.append(
        f"Resolution: {esc(view.resolution_summary)}"
        if view.resolution_summary
        else _gap("how it was resolved, in one sentence")
    )

    firing = sum(1 for a in view.alerts if a.status == "firing")
    impact = [
        "External impact: "
        + (
            "yes — the workflow is customer-facing or output reached customers"
            if view.impact_external
            else "none recorded (internal workflow, nothing delivered externally)"
        ),
        f"Alerts: {len(view.alerts)} ({firing} still firing).",
        _gap("who was affected, how many, for how long"),
    ]

    tried = [_entry(j, esc) for j in view.journal if j.kind == "action" and j.deleted_at is None]
    results = [_entry(j, esc) for j in view.journal if j.kind == "result" and j.deleted_at is None]
    decisions = [
        _entry(j, esc) for j in view.journal if j.kind == "decision" and j.deleted_at is None
    ]
    prompt = _context(view, "prompt_version")
    models = [
        f"{label}: {esc(value)}"
        for label, key in (
            ("requested", "gen_ai.request.model"),
            ("used", "gen_ai.response.model"),
            ("provider", "gen_ai.provider.name"),
            ("agent version", "agent.version"),
        )
        if (value := _context(view, key))
    ]
    return [
        Section("Summary", summary),
        Section("Impact", impact),
        Section("Timeline", timeline_lines(view, esc) or [_gap("what happened, when")]),
        Section(
            "What was tried",
            (tried + results) or [_gap("what was tried and what worked")],
        ),
        Section(
            "Root cause",
            [esc(view.root_cause)] if view.root_cause else [_gap("the root cause")],
        ),
        Section("Prompt version", [esc(prompt)] if prompt else [_gap("the prompt version")]),
        Section("Model version", models or [_gap("the model and its version")]),
        *(
            [Section(BEFORE_INCIDENT, changes_text(view.changes, esc, _UTC))]
            if view.changes
            else []
        ),
        Section(
            "External API changes",
            [_gap("vendor model updates, API, pricing or terms changes around " + _ts(triggered))],
        ),
        Section("Follow-ups", [*decisions, _gap("follow-up actions with owners and dates")]),
    ]


def render_slack(title: str, sections: list[Section]) -> str:
    """Render sections as Slack mrkdwn (the lines are already escaped)."""
    out = [f"*{title}*"]
    for section in sections:
        out.append("")
        out.append(f"*{section.title}*")
        out.extend(f"• {line}" for line in section.lines)
    return "\n".join(out)


def render_markdown(title: str, sections: list[Section]) -> str:
    """Render sections as a Markdown document."""
    out = [f"# {title}"]
    for section in sections:
        out += ["", f"## {section.title}", ""]
        out.extend(f"- {line}" for line in section.lines)
    return "\n".join(out) + "\n"


# a bracket the escaper has not escaped is the draft's own (a gap to fill in): Jira would read
# `[...]` as a link. Escaped text holds no bare backslash (the escaper swaps it for a look-alike).
_BARE_BRACKET = re.compile(r"(?<!\\)([\[\]])")


def render_jira(title: str, sections: list[Section]) -> str:
    """Render sections as Jira wiki markup; the title and lines are escaped with `SafeText.jira`.

    A line's own line breaks become Jira's forced break, so each line stays one list item.
    """
    out = [f"h2. {title}"]
    for section in sections:
        out += ["", f"h3. {section.title}"]
        for line in section.lines:
            item = _BARE_BRACKET.sub(r"\\\1", line)
            out.append("* " + " \\\\ ".join(item.splitlines() or [""]))
    return "\n".join(out)


def _span(delta: timedelta | None) -> str:
    if delta is None:
        return "no data"
    if delta < timedelta(minutes=1):
        return f"{int(delta.total_seconds())} s"
    return _duration(delta)


def _pct(value: float | None) -> str:
    return "no data" if value is None else f"{value:.1%}"


def digest_text(d: Digest, esc: Escape, zone: ZoneInfo, *, slack: bool = True) -> str:
    """Render the weekly digest as Slack mrkdwn (or plain text); it stands without the chart."""

    def bold(text: str) -> str:
        return f"*{text}*" if slack else text

    def mark(name: str) -> str:
        if slack:
            return f":{name}:"
        return {"white_check_mark": "[ok]", "x": "[missing]", "warning": "(!)"}[name]

    def local(at: datetime | None) -> str:
        return at.astimezone(zone).strftime("%a %d %b %H:%M") if at else "never"

    first = d.start.astimezone(zone).date()
    last = (d.end.astimezone(zone) - timedelta(seconds=1)).date()
    title = f"Weekly AI operations review — {d.week} ({first:%d %b} to {last:%d %b %Y})"
    if d.late:
        title += " — posted late: the bot was down at the scheduled time"
    out = [bold(title), ""]

    out.append(bold("1. Cost against baseline"))
    for w in d.workflows:
        if w.cost_usd is None:
            figure = "no data (no alert or handoff carried `cost_usd`)"
        elif w.cost_baseline_usd is None:
            figure = f"${w.cost_usd:,.2f} (no baseline set)"
        else:
            ratio = w.cost_ratio
            flag = f" {mark('warning')} above 150 %" if ratio is not None and ratio > 1.5 else ""
            figure = (
                f"${w.cost_usd:,.2f} of ${w.cost_baseline_usd:,.2f} baseline ({ratio:.0%}){flag}"
            )
        out.append(f"• {esc(w.name)}: {figure}")

    out += ["", bold("2. Error rates")]
    for w in d.workflows:
        if w.error_rate_max is None:
            out.append(f"• {esc(w.name)}: no data (no `error_rate` signal this week)")
        else:
            out.append(
                f"• {esc(w.name)}: peak {_pct(w.error_rate_max)}, last {_pct(w.error_rate_last)}"
            )

    out += ["", bold(f"3. P3 incidents since last week ({len(d.p3_incidents)})")]
    out += [
        f"• INC-{i.id} {esc(i.title)} — {esc(i.workflow)}, {i.state}" for i in d.p3_incidents
    ] or ["• none"]

    out += ["", bold("4. Did every production workflow run?")]
    for w in d.workflows:
        if not w.production:
            continue
        ran = mark("white_check_mark") if w.ran_this_week else mark("x")
        note = "" if w.ran_this_week else " — no activity this week: check it ran"
        out.append(f"• {ran} {esc(w.name)}: last activity {local(w.last_activity_at)}{note}")

    out += ["", bold("Incidents by severity")]
    for s in d.severities:
        out.append(
            f"• {s.severity}: {s.opened} opened, {s.resolved} resolved · MTTA {_span(s.mtta)} · "
            f"MTTR {_span(s.mttr)}"
        )
    out.append(f"• open now: {len(d.open_incidents)}, overdue: {len(d.overdue_incidents)}")
    out += [
        f"  - overdue INC-{i.id} [{i.severity}] {esc(i.title)} (open since {local(i.triggered_at)})"
        for i in d.overdue_incidents[:10]
    ]

    out += ["", bold("Handoffs")]
    if not d.handoffs_total:
        out.append("• no handoffs this week")
    else:
        mix = ", ".join(f"{tier} {n}" for tier, n in d.tier_mix.items())
        out.append(f"• {d.handoffs_total} handoffs: {mix}")
        out.append(
            f"• time to claim p50 {_span(d.time_to_claim[0])}, p90 {_span(d.time_to_claim[1])}"
            f" · to decide p50 {_span(d.time_to_decide[0])}, p90 {_span(d.time_to_decide[1])}"
        )
        out.append(f"• SLA breaches: {d.sla_breaches}")
        decided = [b for b in d.bands if b.decided]
        if decided:
            out.append("• approved without edit, by confidence:")
            out += [
                f"  - {b.label}: {_pct(b.rate)} of {b.decided} "
                f"({b.edited} edited, {b.rejected} rejected)"
                for b in decided
            ]
        else:
            out.append("• approved without edit: no data (no decisions yet)")
    if d.recommendations:
        out += ["", bold("Recommendations")]
        out += [f"• {esc(r)}" for r in d.recommendations]
    return "\n".join(out)
