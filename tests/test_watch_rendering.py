"""The watch summary in Block Kit, the card's last-hour line and the 7-day chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from slack_sdk.models.blocks import Block

from bot.domain.redaction import Redactor, SafeText
from bot.domain.watch.figures import HourPoint, RuleState, WatchFigures
from bot.rendering.cards import card_blocks, card_text
from bot.rendering.charts import watch_chart
from bot.rendering.watch import figures_line
from bot.rendering.watch_blocks import MAX_BLOCKS, MAX_TEXT, watch_blocks, watch_text
from tests.test_rendering import incident, strings

NOW = datetime(2026, 12, 6, 21, 0, tzinfo=UTC)
SAFE = SafeText(Redactor())
BERLIN = ZoneInfo("Europe/Berlin")


def busy(workflow: str = "email-summarizer", **changes: object) -> WatchFigures:
    values: dict[str, object] = {
        "workflow": workflow,
        "runs_last_hour": 142,
        "error_rate_10m": 0.014,
        "error_rate_2h": 0.011,
        "error_rate_today": 0.009,
        "latency_p50_ms_1h": 850.0,
        "latency_p95_ms_1h": 2900.0,
        "latency_max_ms_1h": 4100.0,
        "last_latencies_ms": (900.0, 1200.0, 640.0),
        "tokens_per_run_1h": 1240.0,
        "tokens_per_run_baseline": 1100.0,
        "cost_per_run_1h": 0.012,
        "cost_per_run_baseline": 0.01,
        "spend_today_usd": 14.2,
        "spend_7d_daily_avg_usd": 12.1,
        "refusal_rate_30m": 0.005,
        "confidence_mean_1h": 0.82,
        "handoff_rate_1h": 0.031,
        "model": "gpt-4o",
        "prompt_version": "v12",
        "last_run_at": NOW - timedelta(minutes=1),
        "history_days": 9,
    }
    values.update(changes)
    return WatchFigures(**values)  # type: ignore[arg-type]


def parsed(blocks: list[dict[str, object]]) -> None:
    for block in blocks:
        assert Block.parse(block) is not None, block


def test_the_card_shows_the_last_hour_beside_the_ai_context() -> None:
    view = incident()
    blocks = card_blocks(view, SAFE, last_hour=busy())
    parsed(blocks)
    lines = [
        e["text"]
        for b in blocks
        if b["type"] == "context"
        for e in b["elements"]
        if "Last hour" in e["text"]
    ]
    assert lines == [
        "Last hour: 142 runs · errors 1.4 % (10 min) · p95 2.9 s · $0.012 a run · gpt-4o"
    ]
    # the line sits after the AI context and before the buttons
    kinds = [b["type"] for b in blocks]
    assert kinds[-3:] == ["context", "context", "actions"]
    assert "Last hour: 142 runs" in card_text(view, SAFE, last_hour=busy())


def test_without_figures_the_card_has_no_last_hour_line() -> None:
    view = incident()
    assert "Last hour" not in str(card_blocks(view, SAFE))
    assert "Last hour" not in card_text(view, SAFE)
    assert card_blocks(view, SAFE) == card_blocks(view, SAFE, last_hour=None)


def test_a_quiet_hour_says_when_the_last_run_was() -> None:
    quiet = busy(runs_last_hour=0, error_rate_10m=None, latency_p95_ms_1h=None)
    text = card_text(incident(), SAFE, last_hour=quiet)
    assert "Last hour: no runs · last run 2026-12-06 20:59 UTC" in text


def test_telemetry_text_on_the_card_is_escaped() -> None:
    hostile = busy(model="<!channel> gpt-4o")
    blocks = card_blocks(incident(), SAFE, last_hour=hostile)
    assert not any("<!channel>" in s for s in strings(blocks))


def test_the_summary_has_one_section_per_workflow_with_every_figure() -> None:
    figures = [busy("email-summarizer"), busy("support-chatbot", model=None, history_days=2)]
    blocks = watch_blocks(figures, SAFE.slack, BERLIN)
    parsed(blocks)
    assert [b["type"] for b in blocks] == ["section", "section"]
    first = blocks[0]["text"]["text"]
    assert first.splitlines() == [
        "*email-summarizer*",
        "Runs last hour: 142 · errors 10 min 1.4 %, 2 h 1.1 %, today 0.9 %",
        "Latency (1 h): p50 850 ms · p95 2.9 s · max 4.1 s · latest 900 ms, 1.2 s, 640 ms",
        "Per run (1 h): 1,240 tokens (baseline 1,100) · $0.012 (baseline $0.010)",
        "Spend: $14.20 today · $12.10 a day over 7 days",
        "Refusals 0.5 % (30 min) · confidence 0.82 (1 h) · handoffs 3.1 % (1 h)",
        "model gpt-4o · prompt v12 · last run 2026-12-06 21:59 CET · 9 days of history",
    ]
    assert "model" not in blocks[1]["text"]["text"]
    text = watch_text(figures, SAFE.slack, BERLIN)
    assert text.startswith("email-summarizer\n  Runs last hour: 142")
    assert "\n\nsupport-chatbot\n" in text


def test_a_workflow_without_runs_says_so_and_unknown_figures_are_left_out() -> None:
    blocks = watch_blocks([WatchFigures(workflow="invoice-agent")], SAFE.slack, BERLIN)
    assert blocks[0]["text"]["text"] == "*invoice-agent*\nNo runs seen yet."
    sparse = WatchFigures(workflow="w", runs_last_hour=3, last_run_at=NOW, history_days=0)
    [only] = watch_blocks([sparse], SAFE.slack, BERLIN)
    assert "None" not in only["text"]["text"]
    assert only["text"]["text"].splitlines()[1:] == [
        "Runs last hour: 3",
        "last run 2026-12-06 22:00 CET · under a day of history",
    ]
    [one_day] = watch_blocks([busy(history_days=1)], SAFE.slack, BERLIN)
    assert "· 1 day of history" in one_day["text"]["text"]


def test_many_workflows_stay_within_slacks_limits() -> None:
    figures = [busy(f"workflow-{n:03d}" + "x" * 400, baseline_note="y" * 3000) for n in range(70)]
    blocks = watch_blocks(figures, SAFE.slack, BERLIN)
    parsed(blocks)
    assert len(blocks) == MAX_BLOCKS
    assert all(len(t) <= MAX_TEXT for t in strings(blocks))
    assert blocks[-1]["type"] == "context"
    assert "and 21 more workflows" in blocks[-1]["elements"][0]["text"]


def test_workflow_names_and_versions_are_escaped_in_the_summary() -> None:
    figures = [busy("<!here>", prompt_version="<https://evil.example|v2>")]
    blocks = watch_blocks(figures, SAFE.slack, BERLIN)
    assert not any("<!here>" in s or "<https://" in s for s in strings(blocks))


def week(runs: list[int]) -> list[HourPoint]:
    start = NOW - timedelta(hours=len(runs) - 1)
    return [
        HourPoint(
            start=start + timedelta(hours=n),
            runs=r,
            error_rate=(0.02 if r else None),
            cost_usd=r * 0.01,
        )
        for n, r in enumerate(runs)
    ]


def test_the_chart_is_a_png_of_the_week() -> None:
    png = watch_chart(week([(n * 7) % 40 for n in range(168)]), "email-summarizer", BERLIN)
    assert png is not None and png.startswith(b"\x89PNG\r\n\x1a\n")


def test_a_week_without_runs_has_no_chart() -> None:
    assert watch_chart(week([0] * 168), "email-summarizer", BERLIN) is None
    assert watch_chart([], "email-summarizer", BERLIN) is None


def test_rules_that_hold_are_listed_under_the_figures_else_how_many_are_clear() -> None:
    firing = RuleState(
        "error-rate-critical", "firing", "P1", "error rate 25.0 % (50 of 200 runs) over 10 min"
    )
    clear = RuleState("latency", "clear", "P3", "the last 3 runs under 5 s")
    waiting = RuleState("refusals", "too-few-runs", "P2", "only 12 runs over 30 min")
    [text] = [
        b["text"]["text"] for b in watch_blocks([busy(rules=(firing, clear))], SAFE.slack, BERLIN)
    ]
    assert text.splitlines()[-1] == "*P1* error rate 25.0 % (50 of 200 runs) over 10 min"
    [quiet] = watch_blocks([busy(rules=(clear, waiting))], SAFE.slack, BERLIN)
    assert quiet["text"]["text"].splitlines()[-1] == (
        "Severity rules: 1 clear, 1 waiting for enough runs"
    )
    line = figures_line(busy(rules=(firing, clear)))
    assert line.splitlines()[1] == "  P1 error rate 25.0 % (50 of 200 runs) over 10 min"
    data = busy(rules=(firing,)).as_json()["rules"]
    assert data == [
        {
            "rule": "error-rate-critical",
            "state": "firing",
            "severity": "P1",
            "text": "error rate 25.0 % (50 of 200 runs) over 10 min",
            "since": None,
        }
    ]
