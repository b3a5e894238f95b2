"""Block Kit for `/ai-incident watch` and the incident card's last-hour line.

Workflow names, models and prompt versions come from telemetry: they reach Slack only through
`SafeText`. A figure that is None (no data) is left out rather than shown as zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.domain.watch.figures import WatchFigures
from bot.rendering.watch import cost_text, latency_text, percent_text

__all__ = [
    "MAX_BLOCKS",
    "MAX_TEXT",
    "last_hour_line",
    "watch_blocks",
    "watch_text",
]

MAX_BLOCKS = 50  # Slack's limit for one message
MAX_TEXT = 3000  # Slack's limit for a section's text
_SEP = " · "


Escape = Callable[[str], str]


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _when(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def _history(days: float) -> str:
    if days < 1:
        return "under a day of history"
    return f"{days:.0f} day{'s' if round(days) != 1 else ''} of history"


def _against(value: str, baseline: str | None) -> str:
    return f"{value} (baseline {baseline})" if baseline is not None else value


def last_hour_line(figures: WatchFigures, esc: Escape, zone: ZoneInfo) -> str:
    """Return "Last hour: 142 runs · errors 1.4 % (10 min) · p95 2.9 s · $0.012 a run · gpt-4o"."""
    if not figures.runs_last_hour:
        line = "Last hour: no runs"
        if figures.last_run_at is not None:
            line += f"{_SEP}last run {_when(figures.last_run_at, zone)}"
        return line
    parts = [f"{figures.runs_last_hour:,} run{'s' if figures.runs_last_hour != 1 else ''}"]
    if figures.error_rate_10m is not None:
        parts.append(f"errors {percent_text(figures.error_rate_10m)} (10 min)")
    if figures.latency_p95_ms_1h is not None:
        parts.append(f"p95 {latency_text(figures.latency_p95_ms_1h)}")
    if figures.cost_per_run_1h is not None:
        parts.append(f"{cost_text(figures.cost_per_run_1h)} a run")
    if figures.model:
        parts.append(esc(figures.model))
    return "Last hour: " + _SEP.join(parts)


def _lines(figures: WatchFigures, esc: Escape, zone: ZoneInfo) -> list[str]:
    f = figures
    lines: list[str] = []
    if f.last_run_at is None and f.history_days is None:
        return ["No runs seen yet."]
    rates = [
        f"{label} {percent_text(rate)}"
        for label, rate in (
            ("10 min", f.error_rate_10m),
            ("2 h", f.error_rate_2h),
            ("today", f.error_rate_today),
        )
        if rate is not None
    ]
    lines.append(
        f"Runs last hour: {f.runs_last_hour or 0:,}"
        + (f"{_SEP}errors {', '.join(rates)}" if rates else "")
    )
    latency = [
        f"{label} {latency_text(ms)}"
        for label, ms in (
            ("p50", f.latency_p50_ms_1h),
            ("p95", f.latency_p95_ms_1h),
            ("max", f.latency_max_ms_1h),
        )
        if ms is not None
    ]
    if f.last_latencies_ms:
        latency.append("latest " + ", ".join(latency_text(ms) for ms in f.last_latencies_ms))
    if latency:
        lines.append("Latency (1 h): " + _SEP.join(latency))
    per_run: list[str] = []
    if f.tokens_per_run_1h is not None:
        baseline = None if f.tokens_per_run_baseline is None else _count(f.tokens_per_run_baseline)
        per_run.append(_against(f"{_count(f.tokens_per_run_1h)} tokens", baseline))
    if f.cost_per_run_1h is not None:
        baseline = None if f.cost_per_run_baseline is None else cost_text(f.cost_per_run_baseline)
        per_run.append(_against(cost_text(f.cost_per_run_1h), baseline))
    if per_run:
        lines.append("Per run (1 h): " + _SEP.join(per_run))
    spend: list[str] = []
    if f.spend_today_usd is not None:
        spend.append(f"{cost_text(f.spend_today_usd)} today")
    if f.spend_7d_daily_avg_usd is not None:
        spend.append(f"{cost_text(f.spend_7d_daily_avg_usd)} a day over 7 days")
    if spend:
        lines.append("Spend: " + _SEP.join(spend))
    quality: list[str] = []
    if f.refusal_rate_30m is not None:
        quality.append(f"refusals {percent_text(f.refusal_rate_30m)} (30 min)")
    if f.confidence_mean_1h is not None:
        quality.append(f"confidence {f.confidence_mean_1h:.2f} (1 h)")
    if f.handoff_rate_1h is not None:
        quality.append(f"handoffs {percent_text(f.handoff_rate_1h)} (1 h)")
    if quality:
        lines.append(_SEP.join(quality).capitalize())
    about: list[str] = []
    if f.model:
        about.append(f"model {esc(f.model)}")
    if f.prompt_version:
        about.append(f"prompt {esc(f.prompt_version)}")
    if f.last_run_at is not None:
        about.append(f"last run {_when(f.last_run_at, zone)}")
    if f.history_days is not None:
        about.append(_history(f.history_days))
    if about:
        lines.append(_SEP.join(about))
    if f.baseline_note:
        lines.append(f"_{esc(f.baseline_note)}_")
    lines += _rule_lines(f, esc)
    return lines


def _rule_lines(figures: WatchFigures, esc: Escape) -> list[str]:
    """The watched severity rules that hold now, each with its figures; else how many are clear."""
    if not figures.rules:
        return []
    firing = [r for r in figures.rules if r.state == "firing"]
    if firing:
        return [f"*{r.severity}* {esc(r.text)}" for r in firing]
    clear = sum(1 for r in figures.rules if r.state == "clear")
    waiting = sum(1 for r in figures.rules if r.state == "too-few-runs")
    parts = [f"{clear} clear"]
    if waiting:
        parts.append(f"{waiting} waiting for enough runs")
    return ["Severity rules: " + ", ".join(parts)]


def watch_text(figures: Sequence[WatchFigures], esc: Escape, zone: ZoneInfo) -> str:
    """Return the summary as text: the notification text, and the answer outside Slack."""
    return "\n\n".join(
        "\n".join([esc(f.workflow), *(f"  {line}" for line in _lines(f, esc, zone))])
        for f in figures
    )


def watch_blocks(
    figures: Sequence[WatchFigures], esc: Escape, zone: ZoneInfo
) -> list[dict[str, Any]]:
    """Return one mrkdwn section per workflow, within Slack's limits of blocks and text."""
    blocks: list[dict[str, Any]] = []
    room = MAX_BLOCKS - 1  # one block is kept for the note on workflows left out
    for f in figures[:room]:
        text = "\n".join([f"*{esc(f.workflow)}*", *_lines(f, esc, zone)])
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:MAX_TEXT]}})
    left = len(figures) - room
    if left > 0:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"and {left} more workflows: /ai-incident watch <workflow>",
                    }
                ],
            }
        )
    return blocks
