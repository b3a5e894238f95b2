"""Severity: every §6 rule and boundary, hints and labels, re-evaluation, escalation, properties."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from bot.domain.calendar import BusinessHours
from bot.domain.severity import (
    Decision,
    Duration,
    Evidence,
    Reason,
    Severity,
    SeverityRules,
    Signal,
    classify,
    classify_all,
    escalate_for_missing_root_cause,
    format_duration,
    is_higher,
    max_severity,
    next_review,
    parse_duration,
    reevaluate,
    root_cause_deadline,
)

P1, P2, P3 = Severity.P1, Severity.P2, Severity.P3
H = timedelta(hours=1)
M = timedelta(minutes=1)
US = timedelta(microseconds=1)
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")

RULES = SeverityRules()
HOURS = BusinessHours()  # UTC, Monday-Friday 09:00-17:00
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday, inside business hours


def sig(kind: str, value: float | None = None, **kw: object) -> Signal:
    return Signal(kind, value, **kw)  # type: ignore[arg-type]


def ev(signal: Signal | None = None, **kw: object) -> Evidence:
    # the sender's start time and window count here; tests/domain/test_severity_timing.py judges
    # the default, on the bot's own clock
    return Evidence(signal, **{"trusted_timing": True, **kw})  # type: ignore[arg-type]


def since(delta: timedelta) -> datetime:
    return NOW - delta


def decide(evidence: Evidence, now: datetime = NOW, hours: BusinessHours = HOURS) -> Decision:
    return classify(evidence, RULES, hours, now)


# -- Severity ----------------------------------------------------------------------------------


def test_rank_orders_p1_highest() -> None:
    assert P1.rank > P2.rank > P3.rank


@pytest.mark.parametrize(
    ("severities", "expected"),
    [((P3,), P3), ((P3, P1, P2), P1), ((P2, P3), P2), ((P3, P3), P3)],
)
def test_max_severity(severities: tuple[Severity, ...], expected: Severity) -> None:
    assert max_severity(*severities) is expected


def test_max_severity_needs_an_argument() -> None:
    with pytest.raises(ValueError, match="at least one"):
        max_severity()


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [(P1, P2, True), (P2, P3, True), (P1, P3, True), (P2, P2, False), (P3, P1, False)],
)
def test_is_higher(a: Severity, b: Severity, expected: bool) -> None:
    assert is_higher(a, b) is expected


@pytest.mark.parametrize("text", ["P1", "p1", " P1 "])
def test_severity_reads_any_case(text: str) -> None:
    assert Severity(text) is P1
    assert P1 == "P1"


def test_unknown_severity_is_rejected() -> None:
    with pytest.raises(ValueError):
        Severity("P4")


# -- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10m", 10 * M),
        ("2h", 2 * H),
        ("1d", timedelta(days=1)),
        ("1h30m", 90 * M),
        ("45s", timedelta(seconds=45)),
        ("90m", 90 * M),
        ("1w", timedelta(weeks=1)),
        ("500ms", timedelta(milliseconds=500)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("1h 30m", 90 * M),
        (" 2H ", 2 * H),
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty duration"),
        ("   ", "empty duration"),
        ("10", "invalid duration '10'"),
        ("h", "invalid duration"),
        ("1.5h", "invalid duration"),
        ("-1h", "invalid duration"),
        ("2 hours", "invalid duration"),
        ("1y", "invalid duration"),
        ("30m1h", "largest to smallest"),
        ("1h1h", "largest to smallest"),
        ("99999999999999d", "too large"),
    ],
)
def test_parse_duration_rejects_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


def test_parse_duration_rejects_non_strings() -> None:
    with pytest.raises(TypeError):
        parse_duration(10)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (2 * H, "2h"),
        (90 * M, "1h30m"),
        (timedelta(days=1), "1d"),
        (timedelta(days=8, seconds=1), "8d1s"),
        (timedelta(milliseconds=1500), "1s500ms"),
        (-90 * M, "-1h30m"),
    ],
)
def test_format_duration(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


@settings(deadline=None, database=None)
@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=999)))
def test_format_duration_round_trips_to_the_millisecond(value: timedelta) -> None:
    value -= value % timedelta(milliseconds=1)
    assert parse_duration(format_duration(value)) == value


class _Window(BaseModel):
    window: Duration


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("2h", 2 * H), ("1h30m", 90 * M), (90, 90 * timedelta(seconds=1)), (2 * H, 2 * H)],
)
def test_duration_field_accepts_strings_seconds_and_timedeltas(
    raw: object, expected: timedelta
) -> None:
    model = _Window.model_validate({"window": raw})
    assert model.window == expected
    assert model.model_dump(mode="json") == {"window": format_duration(expected)}


@pytest.mark.parametrize(("raw", "message"), [("2 hours", "invalid duration"), (-5, "negative")])
def test_duration_field_rejects_bad_values(raw: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _Window.model_validate({"window": raw})


# -- SeverityRules -----------------------------------------------------------------------------


def test_rules_default_to_the_runbook() -> None:
    assert RULES.error_rate_p1 == 0.20
    assert RULES.error_rate_p2 == 0.05
    assert RULES.error_rate_p2_sustained == 2 * H
    assert RULES.error_rate_p3 == 0.02
    assert RULES.deviation_stddevs == 2.0
    assert RULES.deviation_sustained_business == 4 * H
    assert RULES.cost_per_run_factor == 2.0
    assert RULES.daily_spend_p2_factor == 3.0
    assert RULES.daily_spend_p2_sustained == 24 * H
    assert RULES.daily_spend_p3_factor == 1.5
    assert RULES.token_usage_p3_factor == 1.3
    assert RULES.refusals_p2 == 0.5
    assert RULES.root_cause_deadline == 4 * H
    assert RULES.label_map == {"critical": P1, "error": P2, "warning": P2, "info": P3}
    assert RULES.default is P3


def test_rules_read_a_policy_section() -> None:
    rules = SeverityRules.model_validate(
        {
            "error_rate_p2_sustained": "90m",
            "daily_spend_p2_sustained": "1d",
            "root_cause_deadline": "2h",
            "label_map": {"Critical": "p1", "page": "P1", "low": "p3"},
            "default": "p2",
        }
    )
    assert rules.error_rate_p2_sustained == 90 * M
    assert rules.daily_spend_p2_sustained == timedelta(days=1)
    assert rules.root_cause_deadline == 2 * H
    assert rules.label_map == {"critical": P1, "page": P1, "low": P3}
    assert rules.default is P2
    dumped = rules.model_dump(mode="json")
    assert dumped["error_rate_p2_sustained"] == "1h30m"
    assert SeverityRules.model_validate(dumped) == rules


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"error_rate_p2": 0.3}, "error_rate_p3 <= error_rate_p2 <= error_rate_p1"),
        ({"error_rate_p3": 0.06}, "error_rate_p3 <= error_rate_p2 <= error_rate_p1"),
        ({"daily_spend_p3_factor": 4}, "daily_spend_p3_factor must not exceed"),
        ({"refusals_p2": -0.1}, "greater than or equal to 0"),
        ({"error_rate_p2_sustained": "2 hours"}, "invalid duration"),
        ({"root_cause_deadline": -60}, "negative"),
        ({"label_map": {"critical": "P0"}}, "label_map"),
        ({"error_rate_p1_typo": 0.3}, "Extra inputs are not permitted"),
    ],
)
def test_rules_reject_bad_sections(section: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SeverityRules.model_validate(section)


def test_rules_are_frozen() -> None:
    with pytest.raises(ValidationError):
        RULES.error_rate_p1 = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P1", P1),
        ("p2", P2),
        ("critical", P1),
        ("CRITICAL", P1),
        (" Warning ", P2),
        ("error", P2),
        ("info", P3),
        ("urgent", None),
        (None, None),
    ],
)
def test_severity_for_label(text: str | None, expected: Severity | None) -> None:
    assert RULES.severity_for_label(text) is expected


# -- classify: the §6 table --------------------------------------------------------------------

Row = tuple[str, Evidence, Severity, str, datetime | None]

ERROR_RATE: list[Row] = [
    ("above P1", ev(sig("error_rate", 0.23)), P1, "error_rate 0.23 > 0.20 (P1 threshold)", None),
    ("just above P1", ev(sig("error_rate", 0.2001)), P1, "0.2001 > 0.20", None),
    ("P1 needs no time", ev(sig("error_rate", 1.0), firing_since=NOW), P1, "> 0.20", None),
    ("exactly P1 is not P1", ev(sig("error_rate", 0.20)), P3, "not yet sustained 2h", None),
    (
        "exactly P1 sustained is P2",
        ev(sig("error_rate", 0.20, window=2 * H)),
        P2,
        "error_rate 0.20 > 0.05 sustained 2h (P2 threshold; window 2h as reported by the sender; trusted timing)",
        None,
    ),
    ("P2 by window", ev(sig("error_rate", 0.07, window=3 * H)), P2, "window 3h", None),
    ("P2 by window exactly 2h", ev(sig("error_rate", 0.07, window=2 * H)), P2, "sustained", None),
    (
        "window just short",
        ev(sig("error_rate", 0.07, window=2 * H - US)),
        P3,
        "not yet sustained 2h (window 1h59m59s999ms as reported by the sender; trusted timing); P3 until then",
        None,
    ),
    (
        "P2 by firing_since",
        ev(sig("error_rate", 0.07), firing_since=since(2 * H)),
        P2,
        "(P2 threshold; firing for 2h as reported by the sender; trusted timing)",
        None,
    ),
    (
        "firing not long enough",
        ev(sig("error_rate", 0.07), firing_since=since(H)),
        P3,
        "error_rate 0.07 > 0.05 not yet sustained 2h (firing for 1h as reported by the sender; trusted timing); P3 until then",
        NOW + H,
    ),
    (
        "firing 1us short",
        ev(sig("error_rate", 0.07), firing_since=since(2 * H - US)),
        P3,
        "not yet sustained",
        NOW + US,
    ),
    (
        "window and firing do not add up",
        ev(sig("error_rate", 0.07, window=H), firing_since=since(H)),
        P3,
        "(window 1h, firing for 1h as reported by the sender; trusted timing)",
        NOW + H,
    ),
    (
        "short window, long firing",
        ev(sig("error_rate", 0.07, window=10 * M), firing_since=since(5 * H)),
        P2,
        "firing for 5h",
        None,
    ),
    (
        "firing starts in the future",
        ev(sig("error_rate", 0.07), firing_since=NOW + 5 * M),
        P3,
        "firing for 0s",
        NOW + 2 * H + 5 * M,
    ),
    (
        "not sustained, nothing to wait on",
        ev(sig("error_rate", 0.07)),
        P3,
        "(no window or start time given)",
        None,
    ),
    ("exactly P2 sustained", ev(sig("error_rate", 0.05, window=3 * H)), P3, "0.05 > 0.02", None),
    ("just above P2", ev(sig("error_rate", 0.0501, window=3 * H)), P2, "0.0501 > 0.05", None),
    ("P3", ev(sig("error_rate", 0.03)), P3, "error_rate 0.03 > 0.02 (P3 threshold)", None),
    ("just above P3", ev(sig("error_rate", 0.0201)), P3, "0.0201 > 0.02", None),
    (
        "exactly P3",
        ev(sig("error_rate", 0.02)),
        P3,
        "error_rate 0.02 <= 0.02 (P3 threshold): expected variability",
        None,
    ),
    ("zero", ev(sig("error_rate", 0.0)), P3, "expected variability", None),
    ("percent by mistake", ev(sig("error_rate", 23.0)), P1, "23.00 > 0.20", None),
]

HARMFUL: list[Row] = [
    (
        "delivered externally",
        ev(sig("harmful_output"), delivered_externally=True),
        P1,
        "harmful AI output delivered externally (P1)",
        None,
    ),
    (
        "acted upon",
        ev(sig("harmful_output"), acted_upon=True),
        P1,
        "harmful AI output acted upon (P1)",
        None,
    ),
    (
        "both, customer-facing",
        ev(sig("harmful_output"), delivered_externally=True, acted_upon=True, customer_facing=True),
        P1,
        "delivered externally and acted upon (customer-facing)",
        None,
    ),
    (
        "caught",
        ev(sig("harmful_output")),
        P3,
        "harmful AI output caught before delivery (P3)",
        None,
    ),
    ("kind in any case", ev(sig("Harmful_Output "), acted_upon=True), P1, "acted upon", None),
    (
        "flag instead of kind",
        ev(harmful_output=True, delivered_externally=True),
        P1,
        "delivered externally",
        None,
    ),
    ("flag, caught", ev(harmful_output=True), P3, "caught before delivery", None),
    (
        "flag with another signal",
        ev(sig("error_rate", 0.03), harmful_output=True, acted_upon=True),
        P1,
        "acted upon",
        None,
    ),
    (
        "delivery flag without a signal",
        ev(delivered_externally=True),
        P1,
        "delivered externally",
        None,
    ),
    (
        "delivery flag on a metric is not harm",
        ev(sig("error_rate", 0.03), delivered_externally=True),
        P3,
        "error_rate 0.03 > 0.02",
        None,
    ),
    (
        "caught beats an untrusted critical hint",
        ev(sig("harmful_output"), hint="critical"),
        P3,
        "caught before delivery",
        None,
    ),
]

# Baseline 10, stddev 1: the P2 band is |value - 10| > 2.
DEVIATION: list[Row] = [
    (
        "above the band, window 4h",
        ev(sig("quality", 12.5, baseline=10, stddev=1, window=4 * H)),
        P2,
        "quality 12.50 vs baseline 10.00: off by 2.50 > 2 stddev = 2.00 for 4h of business hours "
        "(P2 threshold; window 4h as reported by the sender; trusted timing)",
        None,
    ),
    (
        "below the band",
        ev(sig("latency", 7.9, baseline=10, stddev=1, window=5 * H)),
        P2,
        "latency 7.90 vs baseline 10.00",
        None,
    ),
    (
        "exactly on the band",
        ev(sig("quality", 12, baseline=10, stddev=1, window=5 * H)),
        P3,
        "off by 2.00 <= 2 stddev = 2.00: expected variability",
        None,
    ),
    (
        "exactly on the lower band",
        ev(sig("quality", 8, baseline=10, stddev=1, window=5 * H)),
        P3,
        "expected variability",
        None,
    ),
    (
        "just outside the band",
        ev(sig("quality", 12.001, baseline=10, stddev=1, window=5 * H)),
        P2,
        "off by 2.001 > 2 stddev",
        None,
    ),
    (
        "window short",
        ev(sig("quality", 13, baseline=10, stddev=1, window=3 * H)),
        P3,
        "not yet 4h of business hours (window 3h as reported by the sender; trusted timing); P3 until then",
        None,
    ),
    (
        "firing 4 business hours since yesterday",
        ev(sig("quality", 13, baseline=10, stddev=1), firing_since=since(20 * H)),
        P2,
        "firing for 4h of business hours",
        None,
    ),
    (
        "firing 3 business hours",
        ev(sig("quality", 13, baseline=10, stddev=1), firing_since=since(3 * H)),
        P3,
        "(firing for 3h of business hours as reported by the sender; trusted timing)",
        NOW + H,
    ),
    (
        "firing since closing time yesterday",
        ev(sig("quality", 13, baseline=10, stddev=1), firing_since=since(19 * H)),
        P3,
        "firing for 3h of business hours",
        NOW + H,
    ),
    (
        "any metric with baseline and stddev",
        ev(sig("csat", 2.0, baseline=4.5, stddev=0.2, window=6 * H)),
        P2,
        "csat 2.00 vs baseline 4.50",
        None,
    ),
    (
        "zero stddev, on baseline",
        ev(sig("quality", 10, baseline=10, stddev=0, window=6 * H)),
        P3,
        "off by 0.00",
        None,
    ),
    (
        "zero stddev, off baseline",
        ev(sig("quality", 10.5, baseline=10, stddev=0, window=6 * H)),
        P2,
        "off by 0.50 > 2 stddev = 0.00",
        None,
    ),
]

COST: list[Row] = [
    (
        "per run above 2x",
        ev(sig("cost_per_run", 0.41, baseline=0.2)),
        P2,
        "cost_per_run 0.41 > 2x baseline 0.20 = 0.40 (P2 threshold)",
        None,
    ),
    (
        "per run exactly 2x",
        ev(sig("cost_per_run", 0.4, baseline=0.2)),
        P3,
        "cost_per_run 0.40 <= 2x baseline 0.20 = 0.40 (P2 threshold)",
        None,
    ),
    ("per run below", ev(sig("cost_per_run", 0.25, baseline=0.2)), P3, "<= 2x", None),
    ("per run small values", ev(sig("cost_per_run", 0.0031, baseline=0.0015)), P2, "0.0031", None),
    (
        "daily 3x sustained by window",
        ev(sig("daily_spend", 30, baseline=10, window=24 * H)),
        P2,
        "daily_spend 30.00 >= 3x baseline 10.00 = 30.00 sustained 1d (P2 threshold; window 1d as reported by the sender; trusted timing)",
        None,
    ),
    (
        "daily 3x sustained by firing",
        ev(sig("daily_spend", 45, baseline=10), firing_since=since(24 * H)),
        P2,
        "firing for 1d",
        None,
    ),
    (
        "daily 3x not sustained",
        ev(sig("daily_spend", 30, baseline=10, window=23 * H)),
        P3,
        "daily_spend 30.00 >= 3x baseline 10.00 = 30.00 not yet sustained 1d (window 23h as reported by the sender; trusted timing); "
        "P3 until then",
        None,
    ),
    (
        "daily 3x firing 23h",
        ev(sig("daily_spend", 30, baseline=10), firing_since=since(23 * H)),
        P3,
        "not yet sustained 1d",
        NOW + H,
    ),
    (
        "daily just below 3x",
        ev(sig("daily_spend", 29.99, baseline=10, window=48 * H)),
        P3,
        "daily_spend 29.99 > 1.5x baseline 10.00 = 15.00 (P3 threshold)",
        None,
    ),
    (
        "daily exactly 1.5x",
        ev(sig("daily_spend", 15, baseline=10)),
        P3,
        "daily_spend 15.00 <= 1.5x baseline 10.00 = 15.00 (P3 threshold)",
        None,
    ),
    ("daily just above 1.5x", ev(sig("daily_spend", 15.01, baseline=10)), P3, "> 1.5x", None),
    (
        "tokens above 1.3x",
        ev(sig("token_usage", 13.1, baseline=10)),
        P3,
        "token_usage 13.10 > 1.3x baseline 10.00 = 13.00 (P3 threshold)",
        None,
    ),
    ("tokens exactly 1.3x", ev(sig("token_usage", 13, baseline=10)), P3, "13.00 <= 1.3x", None),
    (
        "cost with stddev also checks deviation",
        ev(sig("cost_per_run", 0.3, baseline=0.2, stddev=0.01, window=5 * H)),
        P2,
        "cost_per_run 0.30 vs baseline 0.20: off by 0.10 > 2 stddev = 0.02",
        None,
    ),
]

REFUSALS_THROUGHPUT: list[Row] = [
    (
        "refusals at threshold",
        ev(sig("refusals", 0.5)),
        P2,
        "refusals 0.50 >= 0.50 (P2 threshold): consistently degraded output",
        None,
    ),
    ("refusals high", ev(sig("refusals", 0.95)), P2, "0.95 >= 0.50", None),
    (
        "refusals below",
        ev(sig("refusals", 0.49)),
        P3,
        "refusals 0.49 < 0.50 (P2 threshold)",
        None,
    ),
    (
        "zero over a business day by window",
        ev(sig("throughput", 0, window=8 * H)),
        P2,
        "throughput 0 over a business day of 8h (P2 threshold; window 8h as reported by the sender; trusted timing)",
        None,
    ),
    (
        "zero, window shorter than a business day",
        ev(sig("throughput", 0, window=7 * H)),
        P3,
        "throughput 0 for less than a business day of 8h (window 7h as reported by the sender; trusted timing)",
        None,
    ),
    (
        "zero, firing a business day",
        ev(sig("throughput", 0), firing_since=datetime(2026, 3, 3, 12, tzinfo=UTC)),
        P2,
        "firing for 8h of business hours",
        None,
    ),
    (
        "zero, firing overnight",
        ev(sig("throughput", 0), firing_since=datetime(2026, 3, 3, 16, tzinfo=UTC)),
        P3,
        "(firing for 4h of business hours as reported by the sender; trusted timing)",
        datetime(2026, 3, 4, 16, tzinfo=UTC),
    ),
    ("some tasks done", ev(sig("throughput", 3)), P3, "throughput 3.00 > 0 (P2 only at 0)", None),
]

HINTS: list[Row] = [
    (
        "trusted P1 hint beats the rules",
        ev(sig("error_rate", 0.03), hint="P1", hint_trusted=True),
        P1,
        "severity hint 'P1' from a trusted source (P1)",
        None,
    ),
    (
        "trusted critical hint",
        ev(hint="critical", hint_trusted=True),
        P1,
        "trusted source",
        None,
    ),
    (
        "untrusted P1 hint loses to a rule",
        ev(sig("error_rate", 0.03), hint="P1"),
        P3,
        "error_rate 0.03 > 0.02",
        None,
    ),
    (
        "untrusted P1 hint where no rule speaks",
        ev(hint="p1"),
        P1,
        "severity hint 'p1' maps to P1 (no rule applies)",
        None,
    ),
    (
        "trusted P2 hint is an ordinary hint",
        ev(sig("refusals", 0.1), hint="P2", hint_trusted=True),
        P3,
        "refusals 0.10 < 0.50",
        None,
    ),
    ("trusted P2 hint alone", ev(hint="P2", hint_trusted=True), P2, "maps to P2", None),
    ("warning hint", ev(hint="WARNING"), P2, "severity hint 'WARNING' maps to P2", None),
    ("info hint", ev(hint="info"), P3, "maps to P3", None),
    ("unknown hint", ev(hint="urgent"), P3, "no rule matched; default P3", None),
    (
        "label critical",
        ev(label_severity="critical"),
        P1,
        "severity label 'critical' maps to P1 (no rule applies)",
        None,
    ),
    ("label warning", ev(label_severity="Warning"), P2, "label 'Warning' maps to P2", None),
    ("label error", ev(label_severity="error"), P2, "maps to P2", None),
    ("label info", ev(label_severity="info"), P3, "maps to P3", None),
    ("label unknown", ev(label_severity="page-me"), P3, "no rule matched", None),
    (
        "label loses to a rule",
        ev(sig("token_usage", 20, baseline=10), label_severity="critical"),
        P3,
        "token_usage 20.00 > 1.3x",
        None,
    ),
    (
        "hint and label: the higher wins",
        ev(hint="info", label_severity="critical"),
        P1,
        "label 'critical'",
        None,
    ),
    ("unknown kind", ev(sig("vibes", 0.9)), P3, "no rule matched; default P3", None),
    (
        "unknown kind falls to the label",
        ev(sig("vibes", 0.9, threshold=0.5), label_severity="warning"),
        P2,
        "label 'warning' maps to P2",
        None,
    ),
    (
        "missing value falls to the hint",
        ev(sig("error_rate"), hint="critical"),
        P1,
        "hint 'critical' maps to P1",
        None,
    ),
    ("missing baseline", ev(sig("cost_per_run", 9.0), label_severity="info"), P3, "label", None),
    ("missing daily baseline", ev(sig("daily_spend", 9.0)), P3, "no rule matched", None),
    ("missing token baseline", ev(sig("token_usage", 9.0)), P3, "no rule matched", None),
    ("missing refusals value", ev(sig("refusals")), P3, "no rule matched", None),
    ("missing throughput value", ev(sig("throughput")), P3, "no rule matched", None),
    ("quality without stddev", ev(sig("quality", 1.0, baseline=2.0)), P3, "no rule matched", None),
    (
        "negative stddev is unusable",
        ev(sig("quality", 1.0, baseline=2.0, stddev=-1.0), hint="warning"),
        P2,
        "hint",
        None,
    ),
    ("NaN value is unusable", ev(sig("error_rate", math.nan)), P3, "no rule matched", None),
    ("infinite value is unusable", ev(sig("refusals", math.inf)), P3, "no rule matched", None),
    (
        "NaN value says so",
        ev(sig("error_rate", math.nan)),
        P3,
        "error_rate value NaN is not a finite number: no threshold rule matches it",
        None,
    ),
    (
        "NaN value leaves the label to decide",
        ev(sig("error_rate", math.nan), label_severity="critical"),
        P1,
        "error_rate value NaN is not a finite number",
        None,
    ),
    (
        "infinite baseline says so",
        ev(sig("cost_per_run", 9.0, baseline=-math.inf)),
        P3,
        "cost_per_run baseline -Infinity is not a finite number",
        None,
    ),
    ("nothing at all", ev(), P3, "no rule matched; default P3", None),
]


def _rows(*tables: list[Row]) -> list[object]:
    return [pytest.param(*row[1:], id=row[0]) for table in tables for row in table]


@pytest.mark.parametrize(
    ("evidence", "severity", "text", "review_at"),
    _rows(ERROR_RATE, HARMFUL, DEVIATION, COST, REFUSALS_THROUGHPUT, HINTS),
)
def test_classify(
    evidence: Evidence, severity: Severity, text: str, review_at: datetime | None
) -> None:
    decision = decide(evidence)
    assert decision.severity is severity
    assert decision.reasons[0].severity is severity
    assert any(text in r.text for r in decision.reasons), decision.reasons
    assert decision.review_at == review_at


def test_reasons_list_the_winner_first_and_every_rule() -> None:
    evidence = ev(
        sig("cost_per_run", 0.3, baseline=0.2, stddev=0.01, window=5 * H),
        hint="P1",
        hint_trusted=True,
    )
    decision = decide(evidence)
    assert [(r.rule, r.severity) for r in decision.reasons] == [
        ("trusted_hint", P1),
        ("deviation", P2),
        ("cost_per_run", P3),
    ]
    assert decision.review_at is None


def test_a_value_that_is_not_a_number_is_noted_after_the_verdicts() -> None:
    decision = decide(ev(sig("quality", math.nan, baseline=1.0, stddev=math.inf), hint="warning"))
    assert decision.severity is P2
    assert decision.reasons == (
        Reason("hint", P2, "severity hint 'warning' maps to P2 (no rule applies)"),
        Reason(
            "not_a_number",
            P3,
            "quality value NaN is not a finite number: no threshold rule matches it",
        ),
        Reason(
            "not_a_number",
            P3,
            "quality stddev Infinity is not a finite number: no threshold rule matches it",
        ),
    )


def test_a_rule_that_judged_the_signal_leaves_no_note() -> None:
    decision = decide(ev(sig("error_rate", 0.3, baseline=math.nan)))
    assert decision.severity is P1
    assert [r.rule for r in decision.reasons] == ["error_rate"]


def test_a_note_never_raises_the_default() -> None:
    rules = SeverityRules(default=P2)
    decision = classify(ev(sig("error_rate", math.nan), label_severity="info"), rules, HOURS, NOW)
    assert decision.severity is P3
    assert [r.rule for r in decision.reasons] == ["label", "not_a_number"]


def test_custom_thresholds_apply() -> None:
    rules = SeverityRules(
        error_rate_p1=0.5,
        error_rate_p2=0.1,
        error_rate_p2_sustained=30 * M,
        deviation_stddevs=3,
        label_map={"sev1": P1},
        default=P2,
    )
    assert classify(ev(sig("error_rate", 0.3)), rules, HOURS, NOW).severity is P3
    firing = ev(sig("error_rate", 0.3), firing_since=since(30 * M))
    assert classify(firing, rules, HOURS, NOW).severity is P2
    within = ev(sig("quality", 12.5, baseline=10, stddev=1, window=9 * H))
    assert classify(within, rules, HOURS, NOW).severity is P3
    assert classify(ev(label_severity="SEV1"), rules, HOURS, NOW).severity is P1
    assert classify(ev(label_severity="critical"), rules, HOURS, NOW).reasons == (
        Reason("default", P2, "no rule matched; default P2"),
    )


# -- classify: business hours across weekends and DST -----------------------------------------


def _deviating(firing_since: datetime) -> Evidence:
    return ev(sig("quality", 0.5, baseline=0.9, stddev=0.1), firing_since=firing_since)


@pytest.mark.parametrize(
    ("tz", "firing", "due"),
    [
        # Friday 15:00 local -> 2h on Friday, 2h on Monday: due Monday 11:00 local
        ("UTC", datetime(2026, 3, 6, 15, tzinfo=UTC), datetime(2026, 3, 9, 11, tzinfo=UTC)),
        (
            "Europe/Berlin",
            datetime(2026, 3, 27, 15, tzinfo=BERLIN),
            datetime(2026, 3, 30, 9, tzinfo=UTC),  # 11:00 CEST
        ),
        (
            "Europe/Berlin",
            datetime(2026, 10, 23, 15, tzinfo=BERLIN),
            datetime(2026, 10, 26, 10, tzinfo=UTC),  # 11:00 CET
        ),
        (
            "America/New_York",
            datetime(2026, 3, 6, 15, tzinfo=NEW_YORK),
            datetime(2026, 3, 9, 15, tzinfo=UTC),  # 11:00 EDT
        ),
        (
            "America/New_York",
            datetime(2026, 10, 30, 15, tzinfo=NEW_YORK),
            datetime(2026, 11, 2, 16, tzinfo=UTC),  # 11:00 EST
        ),
    ],
)
def test_deviation_counts_business_hours_over_weekend_and_dst(
    tz: str, firing: datetime, due: datetime
) -> None:
    hours = BusinessHours(timezone=tz)
    evidence = _deviating(firing)
    saturday = firing + timedelta(days=1)
    before = decide(evidence, now=saturday, hours=hours)
    assert (before.severity, before.review_at) == (P3, due)
    assert decide(evidence, now=due - US, hours=hours).severity is P3
    at_due = decide(evidence, now=due, hours=hours)
    assert at_due.severity is P2
    assert "firing for 4h of business hours" in at_due.reasons[0].text
    assert at_due.review_at is None


def test_throughput_business_day_spans_the_weekend() -> None:
    evidence = ev(sig("throughput", 0), firing_since=datetime(2026, 3, 6, 13, tzinfo=UTC))
    friday = decide(evidence, now=datetime(2026, 3, 6, 18, tzinfo=UTC))
    assert (friday.severity, friday.review_at) == (P3, datetime(2026, 3, 9, 13, tzinfo=UTC))
    assert decide(evidence, now=datetime(2026, 3, 9, 13, tzinfo=UTC)).severity is P2


def test_wall_clock_window_counts_even_outside_business_hours() -> None:
    evidence = ev(sig("quality", 0.5, baseline=0.9, stddev=0.1, window=4 * H))
    sunday = datetime(2026, 3, 8, 3, tzinfo=UTC)
    assert decide(evidence, now=sunday).severity is P2


def test_naive_times_are_rejected() -> None:
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        decide(ev(), now=datetime(2026, 3, 4, 12))
    naive = ev(sig("error_rate", 0.07), firing_since=datetime(2026, 3, 4, 11))
    with pytest.raises(ValueError, match="firing_since must be timezone-aware"):
        decide(naive)


def test_decision_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="at least one reason"):
        Decision(P3, (), None)


# -- classify_all ------------------------------------------------------------------------------

PENDING_P2 = ev(sig("error_rate", 0.07), firing_since=since(H))  # P3, P2 at NOW + 1h
PENDING_DEVIATION = ev(sig("quality", 13, baseline=10, stddev=1), firing_since=since(H))  # +3h
COST_P2 = ev(sig("cost_per_run", 0.5, baseline=0.2))
HARM_P1 = ev(sig("harmful_output"), delivered_externally=True)


def test_classify_all_of_nothing_is_the_default() -> None:
    decision = classify_all([], RULES, HOURS, NOW)
    assert decision == Decision(P3, (Reason("default", P3, "no rule matched; default P3"),), None)


def test_classify_all_takes_the_max_with_winners_first() -> None:
    decision = classify_all([PENDING_P2, COST_P2, ev()], RULES, HOURS, NOW)
    assert decision.severity is P2
    assert [r.rule for r in decision.reasons] == ["cost_per_run", "error_rate"]
    assert decision.review_at is None  # nothing pending can go above P2


def test_classify_all_review_at_is_the_earliest_raise() -> None:
    decision = classify_all([PENDING_DEVIATION, PENDING_P2], RULES, HOURS, NOW)
    assert decision.severity is P3
    assert decision.review_at == NOW + H


def test_classify_all_merges_duplicates() -> None:
    decision = classify_all([COST_P2, COST_P2], RULES, HOURS, NOW)
    assert len(decision.reasons) == 1


def test_classify_all_keeps_one_default_when_nothing_speaks() -> None:
    decision = classify_all([ev(), ev(hint="bogus")], RULES, HOURS, NOW)
    assert decision.reasons == (Reason("default", P3, "no rule matched; default P3"),)


# -- reevaluate and next_review ----------------------------------------------------------------


def test_reevaluate_raises_with_time() -> None:
    assert reevaluate(P3, [PENDING_P2], RULES, HOURS, NOW) is None
    later = reevaluate(P3, [PENDING_P2], RULES, HOURS, NOW + H)
    assert later is not None
    assert later.severity is P2
    assert "sustained 2h" in later.reasons[0].text


@pytest.mark.parametrize("current", [P1, P2])
def test_reevaluate_never_lowers_or_repeats(current: Severity) -> None:
    assert reevaluate(current, [COST_P2], RULES, HOURS, NOW) is None
    assert reevaluate(current, [], RULES, HOURS, NOW) is None


def test_reevaluate_to_p1() -> None:
    decision = reevaluate(P2, [COST_P2, HARM_P1], RULES, HOURS, NOW)
    assert decision is not None
    assert decision.severity is P1
    assert [r.rule for r in decision.reasons] == ["harmful_output", "cost_per_run"]


@pytest.mark.parametrize(
    ("current", "expected"),
    [(P3, NOW + H), (P2, None), (P1, None)],
)
def test_next_review_is_relative_to_current(current: Severity, expected: datetime | None) -> None:
    assert next_review(current, [PENDING_P2, PENDING_DEVIATION], RULES, HOURS, NOW) == expected


# -- root cause deadline -----------------------------------------------------------------------


@pytest.mark.parametrize(("severity", "expected"), [(P2, NOW + 4 * H), (P1, None), (P3, None)])
def test_root_cause_deadline(severity: Severity, expected: datetime | None) -> None:
    assert root_cause_deadline(severity, NOW, RULES) == expected


def test_root_cause_deadline_follows_policy() -> None:
    rules = SeverityRules.model_validate({"root_cause_deadline": "90m"})
    assert root_cause_deadline(P2, NOW, rules) == NOW + 90 * M


DEADLINE = NOW - M


@pytest.mark.parametrize(
    ("current", "deadline", "root_cause_at", "now", "escalates"),
    [
        pytest.param(P2, DEADLINE, None, NOW, True, id="passed, no root cause"),
        pytest.param(P2, NOW, None, NOW, True, id="exactly at the deadline"),
        pytest.param(P2, NOW + US, None, NOW, False, id="before the deadline"),
        pytest.param(P2, DEADLINE, NOW - H, NOW, False, id="root cause recorded in time"),
        pytest.param(P2, DEADLINE, NOW - US, NOW, False, id="root cause recorded late"),
        pytest.param(P2, DEADLINE, NOW + H, NOW, True, id="root cause not yet at now"),
        pytest.param(P2, None, None, NOW, False, id="no deadline"),
        pytest.param(P1, DEADLINE, None, NOW, False, id="already P1"),
        pytest.param(P3, DEADLINE, None, NOW, False, id="P3 has no deadline"),
    ],
)
def test_escalate_for_missing_root_cause(
    current: Severity,
    deadline: datetime | None,
    root_cause_at: datetime | None,
    now: datetime,
    escalates: bool,
) -> None:
    decision = escalate_for_missing_root_cause(current, deadline, root_cause_at, now, RULES)
    if not escalates:
        assert decision is None
        return
    assert decision is not None
    assert decision.severity is P1
    assert decision.review_at is None
    (reason,) = decision.reasons
    assert reason.rule == "root_cause_deadline"
    assert reason.severity is P1
    assert reason.text.startswith("no root cause recorded within 4h of becoming P2")


# -- properties --------------------------------------------------------------------------------

PROPERTIES = settings(deadline=None, database=None)

KINDS = [
    "error_rate",
    "harmful_output",
    "quality",
    "latency",
    "cost_per_run",
    "daily_spend",
    "token_usage",
    "refusals",
    "throughput",
    "unknown_metric",
]
LABELS = [None, "P1", "P2", "P3", "critical", "warning", "error", "info", "bogus"]
ZONES = ["UTC", "Europe/Berlin", "America/New_York"]

instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
)
numbers = st.one_of(
    st.none(),
    st.sampled_from([0.0, 0.02, 0.05, 0.07, 0.2, 0.5, 1.0, 2.0, 3.0]),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.floats(min_value=0, max_value=1),
    st.floats(min_value=0, max_value=50),
)
labels = st.one_of(st.none(), st.sampled_from(LABELS))
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3))


@st.composite
def signals(draw: st.DrawFn) -> Signal:
    return Signal(
        kind=draw(st.sampled_from(KINDS)),
        value=draw(numbers),
        threshold=draw(numbers),
        baseline=draw(numbers),
        stddev=draw(numbers),
        window=draw(st.one_of(st.none(), st.none(), durations)),
    )


rarely = st.sampled_from([False, False, False, True])


@st.composite
def evidences(draw: st.DrawFn, around: datetime | None = None) -> Evidence:
    ago = st.one_of(st.timedeltas(-H, 6 * H), st.timedeltas(-H, timedelta(days=4)))
    firing = instants if around is None else ago.map(lambda delta: around - delta)
    return Evidence(
        signal=draw(st.one_of(st.none(), signals())),
        delivered_externally=draw(rarely),
        acted_upon=draw(rarely),
        customer_facing=draw(st.booleans()),
        hint=draw(labels),
        hint_trusted=draw(rarely),
        label_severity=draw(labels),
        harmful_output=draw(rarely),
        firing_since=draw(st.one_of(st.none(), firing)),
        seen_since=draw(st.one_of(st.none(), firing)),
        trusted_timing=draw(st.booleans()),
    )


@st.composite
def scenarios(
    draw: st.DrawFn, min_size: int = 1, max_size: int = 1
) -> tuple[list[Evidence], datetime]:
    now = draw(instants)
    return draw(st.lists(evidences(now), min_size=min_size, max_size=max_size)), now


@st.composite
def pending(draw: st.DrawFn) -> tuple[list[Evidence], datetime]:
    """Draw one alert that time alone may raise: the cases with a review_at."""
    now = draw(instants)
    signal = draw(
        st.one_of(
            st.builds(Signal, st.just("error_rate"), st.floats(0.0501, 0.2)),
            st.builds(
                Signal,
                st.sampled_from(["quality", "latency", "cost_per_run"]),
                st.floats(0, 20),
                baseline=st.just(10.0),
                stddev=st.floats(0, 3),
            ),
            st.builds(Signal, st.just("daily_spend"), st.floats(30, 60), baseline=st.just(10.0)),
            st.builds(Signal, st.just("throughput"), st.just(0.0)),
        )
    )
    ago = st.timedeltas(-H, timedelta(days=3))
    evidence = Evidence(
        signal,
        hint=draw(labels),
        firing_since=now - draw(ago),
        seen_since=now - draw(ago),
        trusted_timing=draw(st.booleans()),
    )
    return [evidence], now


hours_strategy = st.builds(BusinessHours, timezone=st.sampled_from(ZONES))
severities = st.sampled_from(list(Severity))


@PROPERTIES
@given(severities, st.one_of(scenarios(min_size=0, max_size=4), pending()), hours_strategy)
def test_reevaluate_only_ever_raises(
    current: Severity, scenario: tuple[list[Evidence], datetime], hours: BusinessHours
) -> None:
    items, now = scenario
    decision = reevaluate(current, items, RULES, hours, now)
    if decision is not None:
        assert is_higher(decision.severity, current)
    review = next_review(current, items, RULES, hours, now)
    if review is not None:
        assert review > now
        assert reevaluate(current, items, RULES, hours, review - US) is None
        assert reevaluate(current, items, RULES, hours, review) is not None


@PROPERTIES
@given(st.one_of(scenarios(), pending()), hours_strategy, durations)
def test_classify_is_monotone_in_time(
    scenario: tuple[list[Evidence], datetime], hours: BusinessHours, later: timedelta
) -> None:
    (evidence,), now = scenario
    early = classify(evidence, RULES, hours, now)
    late = classify(evidence, RULES, hours, now + later)
    assert late.severity.rank >= early.severity.rank


@PROPERTIES
@given(st.one_of(scenarios(), pending()), hours_strategy)
def test_review_at_is_exactly_when_severity_rises(
    scenario: tuple[list[Evidence], datetime], hours: BusinessHours
) -> None:
    (evidence,), now = scenario
    decision = classify(evidence, RULES, hours, now)
    assert decision.reasons[0].severity is decision.severity
    if decision.review_at is None:
        return
    assert decision.review_at > now
    assert classify(evidence, RULES, hours, decision.review_at - US).severity is decision.severity
    raised = classify(evidence, RULES, hours, decision.review_at)
    assert is_higher(raised.severity, decision.severity)


@PROPERTIES
@given(scenarios(min_size=1, max_size=4), hours_strategy)
def test_classify_all_is_at_least_each_classify(
    scenario: tuple[list[Evidence], datetime], hours: BusinessHours
) -> None:
    items, now = scenario
    merged = classify_all(items, RULES, hours, now)
    assert merged.reasons[0].severity is merged.severity
    for evidence in items:
        single = classify(evidence, RULES, hours, now)
        assert merged.severity.rank >= single.severity.rank
        assert all(r in merged.reasons for r in single.reasons if r.rule != "default")
