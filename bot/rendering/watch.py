"""Plain-text lines of the watched workflows' figures (the CLI prints them; Slack may reuse them).

A figure without data is left out of its line (a rate with no runs shows as "n/a"); a workflow
with no history at all reads "no runs seen".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime

from bot.domain.watch.figures import WatchFigures

__all__ = ["cost_text", "figures_line", "figures_text", "latency_text", "percent_text"]

_NONE = "n/a"
_SEP = " · "


def percent_text(rate: float | None) -> str:
    """Return a rate (0..1) as a percentage with one decimal, e.g. "1.4 %"."""
    return _NONE if rate is None else f"{rate * 100:.1f} %"


def latency_text(ms: float | None) -> str:
    """Return a latency: "820 ms" below a second, "2.9 s" from one on."""
    if ms is None:
        return _NONE
    if round(ms) < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.1f} s"


def cost_text(usd: float | None) -> str:
    """Return a small amount of dollars with enough decimals to tell it from zero ("$0.012")."""
    if usd is None:
        return _NONE
    if usd == 0 or usd >= 1:
        return f"${usd:,.2f}"
    decimals = min(max(3, 1 - math.floor(math.log10(usd))), 6)
    return f"${usd:.{decimals}f}"


def _spend(usd: float) -> str:
    return f"${usd:,.2f}"


def _tokens(value: float) -> str:
    return f"{round(value):,}"


def _with_baseline(text: str, baseline: str | None) -> str:
    return f"{text} (baseline {baseline})" if baseline is not None else text


def _when(at: datetime, now: datetime | None) -> str:
    at = at.astimezone(UTC)
    if now is not None and now.astimezone(UTC).date() == at.date():
        return f"{at:%H:%M} UTC"
    return f"{at:%Y-%m-%d %H:%M} UTC"


def figures_line(figures: WatchFigures, *, now: datetime | None = None) -> str:
    """Return one workflow's figures as one line of text (times in UTC)."""
    f = figures
    if not f.seen:
        return f"{f.workflow} — no runs seen"
    runs = f.runs_last_hour or 0
    parts = [f"{f.workflow} — {runs:,} run{'' if runs == 1 else 's'} in the last hour"]
    parts.append(
        f"errors {percent_text(f.error_rate_10m)} (10 min), {percent_text(f.error_rate_2h)} "
        f"(2 h), {percent_text(f.error_rate_today)} today"
    )
    latency = []
    if f.latency_p50_ms_1h is not None:
        latency.append(
            f"p50 {latency_text(f.latency_p50_ms_1h)}, p95 {latency_text(f.latency_p95_ms_1h)}"
        )
    if f.last_latencies_ms:
        shown = ", ".join(latency_text(ms) for ms in f.last_latencies_ms)
        latency.append(f"last {len(f.last_latencies_ms)}: {shown}")
    if latency:
        parts.append("; ".join(latency))
    if f.tokens_per_run_1h is not None:
        baseline = (
            _tokens(f.tokens_per_run_baseline) if f.tokens_per_run_baseline is not None else None
        )
        parts.append(_with_baseline(f"tokens/run {_tokens(f.tokens_per_run_1h)}", baseline))
    if f.cost_per_run_1h is not None:
        baseline = (
            cost_text(f.cost_per_run_baseline) if f.cost_per_run_baseline is not None else None
        )
        parts.append(_with_baseline(f"cost/run {cost_text(f.cost_per_run_1h)}", baseline))
    if f.spend_today_usd is not None:
        spend = f"spend today {_spend(f.spend_today_usd)}"
        if f.spend_7d_daily_avg_usd is not None:
            spend += f" (7-day average {_spend(f.spend_7d_daily_avg_usd)}/day)"
        parts.append(spend)
    if f.refusal_rate_30m is not None:
        parts.append(f"refusals {percent_text(f.refusal_rate_30m)}")
    if f.confidence_mean_1h is not None:
        parts.append(f"confidence {f.confidence_mean_1h:.2f}")
    if f.handoff_rate_1h is not None:
        parts.append(f"handoffs {percent_text(f.handoff_rate_1h)}")
    versions = [
        *([f.model] if f.model else []),
        *([f"prompt {f.prompt_version}"] if f.prompt_version else []),
    ]
    if versions:
        parts.append(", ".join(versions))
    if f.last_run_at is not None:
        parts.append(f"last run {_when(f.last_run_at, now)}")
    if f.baseline_note is not None:
        parts.append(f"baselines: {f.baseline_note}")
    line = _SEP.join(parts)
    firing = [r for r in f.rules if r.state == "firing"]
    # a rule that holds gets a line of its own under the figures it quotes
    return "\n".join([line, *(f"  {r.severity} {r.text}" for r in firing)])


def figures_text(figures: Iterable[WatchFigures], *, now: datetime | None = None) -> str:
    """Return the figures of some workflows, one line each."""
    return "\n".join(figures_line(f, now=now) for f in figures)
