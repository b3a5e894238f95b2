"""Severity P1/P2/P3: the classification rules, their thresholds as policy data, and escalation."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from bot.domain.calendar import BusinessHours
from bot.domain.numbers import non_finite_name

__all__ = [
    "Decision",
    "Duration",
    "Evidence",
    "Reason",
    "Severity",
    "SeverityRules",
    "Signal",
    "classify",
    "classify_all",
    "escalate_for_missing_root_cause",
    "format_duration",
    "is_higher",
    "max_severity",
    "next_review",
    "parse_duration",
    "reevaluate",
    "root_cause_deadline",
]


class Severity(StrEnum):
    """Incident severity; P1 is the most severe."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"

    @classmethod
    def _missing_(cls, value: object) -> Severity | None:
        if isinstance(value, str):
            key = value.strip().upper()
            for member in cls:
                if member.value == key:
                    return member
        return None

    @property
    def rank(self) -> int:
        """Return 3 for P1, 2 for P2, 1 for P3, so that a higher rank is more severe."""
        return _RANK[self]


_RANK = {Severity.P1: 3, Severity.P2: 2, Severity.P3: 1}


def max_severity(*severities: Severity) -> Severity:
    """Return the most severe of `severities`."""
    if not severities:
        raise ValueError("max_severity needs at least one severity")
    return max(severities, key=lambda s: s.rank)


def is_higher(a: Severity, b: Severity) -> bool:
    """Return whether `a` is strictly more severe than `b`."""
    return a.rank > b.rank


# -- durations ---------------------------------------------------------------------------------

_UNITS: dict[str, timedelta] = {
    "w": timedelta(weeks=1),
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1),
}
_UNIT_ORDER = tuple(_UNITS)
_DURATION = re.compile(r"(?:\d+\s*(?:ms|w|d|h|m|s)\s*)+")
_DURATION_PART = re.compile(r"(\d+)\s*(ms|w|d|h|m|s)")
_DURATION_HELP = "expected a number with a unit (w, d, h, m, s, ms), e.g. '10m', '2h', '1h30m'"


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as "10m", "2h", "1d", "1h30m" or "45s"."""
    if not isinstance(text, str):
        raise TypeError(f"duration must be a string, got {type(text).__name__}")
    cleaned = text.strip().lower()
    if cleaned == "0":
        return timedelta(0)
    if not cleaned:
        raise ValueError(f"empty duration; {_DURATION_HELP}")
    if not _DURATION.fullmatch(cleaned):
        raise ValueError(f"invalid duration {text!r}; {_DURATION_HELP}")
    total = timedelta(0)
    last = -1
    for number, unit in _DURATION_PART.findall(cleaned):
        index = _UNIT_ORDER.index(unit)
        if index <= last:
            raise ValueError(
                f"invalid duration {text!r}; units must go from largest to smallest, "
                "each at most once, e.g. '1h30m'"
            )
        last = index
        try:
            total += int(number) * _UNITS[unit]
        except OverflowError:
            raise ValueError(f"duration {text!r} is too large") from None
    return total


def format_duration(value: timedelta) -> str:
    """Format a duration the way `parse_duration` reads it, e.g. "1h30m"."""
    if value < timedelta(0):
        return "-" + format_duration(-value)
    micros = value // timedelta(microseconds=1)
    parts: list[str] = []
    for unit in ("d", "h", "m", "s", "ms"):
        step = _UNITS[unit] // timedelta(microseconds=1)
        count, micros = divmod(micros, step)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _coerce_duration(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    return value


def _non_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError(f"duration must not be negative, got {format_duration(value)}")
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_coerce_duration),
    AfterValidator(_non_negative),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""A non-negative timedelta read from "2h"-style strings (or seconds), written back as "2h"."""


# -- policy ------------------------------------------------------------------------------------


def _default_label_map() -> dict[str, Severity]:
    # "error" sits between warning and critical in common alerting conventions; it is read as P2
    # so that only an explicit "critical" reaches P1 without a rule.
    return {
        "critical": Severity.P1,
        "error": Severity.P2,
        "warning": Severity.P2,
        "info": Severity.P3,
    }


class SeverityRules(BaseModel, frozen=True, extra="forbid"):
    """The thresholds of the severity rules (policy-file section `severity:`)."""

    error_rate_p1: float = Field(default=0.20, ge=0)
    error_rate_p2: float = Field(default=0.05, ge=0)
    error_rate_p2_sustained: Duration = timedelta(hours=2)
    error_rate_p3: float = Field(default=0.02, ge=0)
    deviation_stddevs: float = Field(default=2.0, ge=0)
    deviation_sustained_business: Duration = timedelta(hours=4)
    cost_per_run_factor: float = Field(default=2.0, ge=0)
    daily_spend_p2_factor: float = Field(default=3.0, ge=0)
    daily_spend_p2_sustained: Duration = timedelta(hours=24)
    daily_spend_p3_factor: float = Field(default=1.5, ge=0)
    token_usage_p3_factor: float = Field(default=1.3, ge=0)
    refusals_p2: float = Field(default=0.5, ge=0)
    root_cause_deadline: Duration = timedelta(hours=4)
    # the rules judged on the bot's own history of a workflow (bot.domain.watch.rules)
    # a rate needs this many runs in its window
    min_runs: int = Field(default=20, ge=1)
    error_rate_window: Duration = timedelta(minutes=10)
    # the P2 error rate must be above error_rate_p2 in every slice this long of the sustained span
    error_rate_p2_slice: Duration = timedelta(minutes=10)
    latency_ms: float = Field(default=5000.0, ge=0)
    latency_runs: int = Field(default=3, ge=1)
    token_usage_window: Duration = timedelta(hours=1)
    cost_per_run_window: Duration = timedelta(hours=1)
    refusals_window: Duration = timedelta(minutes=30)
    # a rule's incident resolves once its condition has been clear this long
    hold_down: Duration = timedelta(minutes=15)
    # a baseline needs this many days of history
    baseline_days: int = Field(default=7, ge=1)
    label_map: dict[str, Severity] = Field(default_factory=_default_label_map)
    default: Severity = Severity.P3

    @field_validator("label_map")
    @classmethod
    def _lower_labels(cls, value: dict[str, Severity]) -> dict[str, Severity]:
        return {k.strip().lower(): v for k, v in value.items()}

    @model_validator(mode="after")
    def _ordered(self) -> SeverityRules:
        if not self.error_rate_p3 <= self.error_rate_p2 <= self.error_rate_p1:
            raise ValueError(
                "error-rate thresholds must satisfy error_rate_p3 <= error_rate_p2 <= "
                f"error_rate_p1, got {self.error_rate_p3}, {self.error_rate_p2}, "
                f"{self.error_rate_p1}"
            )
        if self.daily_spend_p3_factor > self.daily_spend_p2_factor:
            raise ValueError(
                "daily_spend_p3_factor must not exceed daily_spend_p2_factor, got "
                f"{self.daily_spend_p3_factor} > {self.daily_spend_p2_factor}"
            )
        return self

    def severity_for_label(self, text: str | None) -> Severity | None:
        """Map a hint or label ("P1".."P3" or a `label_map` key, any case) to a severity."""
        if text is None:
            return None
        key = text.strip()
        if key.upper() in Severity.__members__:
            return Severity(key.upper())
        return self.label_map.get(key.lower())


# -- evidence and decisions --------------------------------------------------------------------


@dataclass(frozen=True)
class Signal:
    """A measured value an alert reports, with its baseline and window where known."""

    kind: str
    value: float | None = None
    threshold: float | None = None
    baseline: float | None = None
    stddev: float | None = None
    window: timedelta | None = None


@dataclass(frozen=True)
class Evidence:
    """What one alert tells the classifier.

    `firing_since` is when the sender says the alert began firing; `seen_since` is when the bot
    first saw it firing, on its own clock. A sustained duration counts from `seen_since`, and a
    signal's `window` only says over what span the sender computed its value, unless the source
    has `trusted_timing`: then the sender's start time and window count. `reported_by` names the
    source in the reasons.
    """

    signal: Signal | None = None
    delivered_externally: bool = False
    acted_upon: bool = False
    customer_facing: bool = False
    hint: str | None = None
    hint_trusted: bool = False
    label_severity: str | None = None
    harmful_output: bool = False
    firing_since: datetime | None = None
    # the verdict of a rule the bot judged itself on its watched history (source `watch`)
    watched: Reason | None = None
    seen_since: datetime | None = None
    trusted_timing: bool = False
    reported_by: str | None = None


@dataclass(frozen=True)
class Reason:
    """One rule's verdict, in words that name the values and the threshold."""

    rule: str
    severity: Severity
    text: str


@dataclass(frozen=True)
class Decision:
    """A severity with the reasons for it and when time alone could raise it."""

    severity: Severity
    reasons: tuple[Reason, ...]
    review_at: datetime | None

    def __post_init__(self) -> None:
        if not self.reasons:
            raise ValueError("a severity decision needs at least one reason")


@dataclass(frozen=True)
class _Rise:
    at: datetime
    severity: Severity


@dataclass(frozen=True)
class _Finding:
    reason: Reason
    rise: _Rise | None = None
    # a note says why no rule could judge a signal; it is listed but never sets the severity
    note: bool = False


@dataclass(frozen=True)
class _Context:
    evidence: Evidence
    signal: Signal
    rules: SeverityRules
    hours: BusinessHours
    now: datetime

    def sustained(self, duration: timedelta) -> tuple[bool, str]:
        """Return whether the signal has held for `duration` of wall time, and how we know."""
        if not self.evidence.trusted_timing:
            held_for = self._seen_for()
            held = held_for is not None and held_for >= duration
            return held, self._as_seen(held_for, "", duration, held)
        window = self.signal.window
        if window is not None and window >= duration:
            return True, self._reported(f"window {format_duration(window)}")
        since = self.evidence.firing_since
        if since is not None and self.now - since >= duration:
            return True, self._reported(f"firing for {format_duration(self.now - since)}")
        return False, self._held_for(window, None if since is None else self.now - since)

    def sustained_business(self, duration: timedelta) -> tuple[bool, str]:
        """Return whether the signal has held for `duration` of business time, and how we know."""
        suffix = " of business hours"
        if not self.evidence.trusted_timing:
            seen = self.evidence.seen_since
            held_for = None if seen is None else self.hours.business_time_between(seen, self.now)
            held = held_for is not None and held_for >= duration
            return held, self._as_seen(held_for, suffix, duration, held)
        window = self.signal.window
        if window is not None and window >= duration:
            return True, self._reported(f"window {format_duration(window)}")
        since = self.evidence.firing_since
        held_for = None if since is None else self.hours.business_time_between(since, self.now)
        if held_for is not None and held_for >= duration:
            return True, self._reported(f"firing for {format_duration(held_for)}{suffix}")
        return False, self._held_for(window, held_for, suffix)

    def rise_after(self, duration: timedelta, severity: Severity) -> _Rise | None:
        """Return when `duration` of wall time since the alert started firing will have passed."""
        since = self._start()
        return None if since is None else _Rise(since + duration, severity)

    def rise_after_business(self, duration: timedelta, severity: Severity) -> _Rise | None:
        """Return when `duration` of business time since the alert started firing will pass."""
        since = self._start()
        if since is None:
            return None
        return _Rise(self.hours.add_business_time(since, duration), severity)

    def _start(self) -> datetime | None:
        """Return the start the durations count from: the sender's if trusted, else the bot's."""
        ev = self.evidence
        return ev.firing_since if ev.trusted_timing else ev.seen_since

    def _seen_for(self) -> timedelta | None:
        seen = self.evidence.seen_since
        return None if seen is None else self.now - seen

    def _sender(self) -> str:
        return self.evidence.reported_by or "the sender"

    def _reported(self, text: str) -> str:
        return f"{text} as reported by {self._sender()}; trusted timing"

    def _as_seen(
        self, held_for: timedelta | None, suffix: str, duration: timedelta, held: bool
    ) -> str:
        """Say how long the bot itself has seen the alert firing, and what the window is not."""
        if held_for is None:
            text = "not seen firing by the bot yet"
        else:
            shown = format_duration(max(held_for, timedelta(0)))
            text = f"firing for {shown}{suffix} as seen by the bot"
        if not held:
            text += f"; sustained needs {format_duration(duration)}{suffix}"
        window = self.signal.window
        if window is not None:
            text += (
                f"; window {format_duration(window)} as reported by {self._sender()} is the span "
                "of its value, not how long it held"
            )
        return text

    def _held_for(self, window: timedelta | None, held: timedelta | None, suffix: str = "") -> str:
        parts: list[str] = []
        if window is not None:
            parts.append(f"window {format_duration(window)}")
        if held is not None:
            parts.append(f"firing for {format_duration(max(held, timedelta(0)))}{suffix}")
        if not parts:
            return "no window or start time given"
        return self._reported(", ".join(parts))


def _fmt(x: float) -> str:
    # Two decimals read best on a card, unless they would hide how a value differs from a threshold.
    text = f"{x:.2f}"
    return text if abs(float(text) - x) <= 1e-9 * max(1.0, abs(x)) else f"{x:.6g}"


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _finding(rule: str, severity: Severity, text: str, rise: _Rise | None = None) -> _Finding:
    return _Finding(Reason(rule, severity, text), rise)


# -- the rules, one per signal kind ------------------------------------------------------------

_Rule = Callable[[_Context], list[_Finding]]


def _error_rate(ctx: _Context) -> list[_Finding]:
    r = ctx.rules
    value = _finite(ctx.signal.value)
    if value is None:
        return []
    v = _fmt(value)
    if value > r.error_rate_p1:
        return [
            _finding(
                "error_rate",
                Severity.P1,
                f"error_rate {v} > {_fmt(r.error_rate_p1)} (P1 threshold)",
            )
        ]
    if value > r.error_rate_p2:
        need = r.error_rate_p2_sustained
        held, how = ctx.sustained(need)
        if held:
            text = (
                f"error_rate {v} > {_fmt(r.error_rate_p2)} sustained {format_duration(need)} "
                f"(P2 threshold; {how})"
            )
            return [_finding("error_rate", Severity.P2, text)]
        text = (
            f"error_rate {v} > {_fmt(r.error_rate_p2)} not yet sustained {format_duration(need)} "
            f"({how}); P3 until then"
        )
        return [_finding("error_rate", Severity.P3, text, ctx.rise_after(need, Severity.P2))]
    if value > r.error_rate_p3:
        return [
            _finding(
                "error_rate",
                Severity.P3,
                f"error_rate {v} > {_fmt(r.error_rate_p3)} (P3 threshold)",
            )
        ]
    text = f"error_rate {v} <= {_fmt(r.error_rate_p3)} (P3 threshold): expected variability"
    return [_finding("error_rate", Severity.P3, text)]


def _cost_per_run(ctx: _Context) -> list[_Finding]:
    value, baseline = _finite(ctx.signal.value), _finite(ctx.signal.baseline)
    if value is None or baseline is None:
        return []
    factor = ctx.rules.cost_per_run_factor
    limit = factor * baseline
    shown = f"cost_per_run {_fmt(value)}"
    of = f"{factor:g}x baseline {_fmt(baseline)} = {_fmt(limit)}"
    if value > limit:
        return [_finding("cost_per_run", Severity.P2, f"{shown} > {of} (P2 threshold)")]
    return [_finding("cost_per_run", Severity.P3, f"{shown} <= {of} (P2 threshold)")]


def _daily_spend(ctx: _Context) -> list[_Finding]:
    r = ctx.rules
    value, baseline = _finite(ctx.signal.value), _finite(ctx.signal.baseline)
    if value is None or baseline is None:
        return []
    shown = f"daily_spend {_fmt(value)}"
    p2_limit = r.daily_spend_p2_factor * baseline
    p2_of = f"{r.daily_spend_p2_factor:g}x baseline {_fmt(baseline)} = {_fmt(p2_limit)}"
    p3_limit = r.daily_spend_p3_factor * baseline
    p3_of = f"{r.daily_spend_p3_factor:g}x baseline {_fmt(baseline)} = {_fmt(p3_limit)}"
    if value >= p2_limit:
        need = r.daily_spend_p2_sustained
        held, how = ctx.sustained(need)
        if held:
            text = f"{shown} >= {p2_of} sustained {format_duration(need)} (P2 threshold; {how})"
            return [_finding("daily_spend", Severity.P2, text)]
        text = (
            f"{shown} >= {p2_of} not yet sustained {format_duration(need)} ({how}); P3 until then"
        )
        return [_finding("daily_spend", Severity.P3, text, ctx.rise_after(need, Severity.P2))]
    if value > p3_limit:
        return [_finding("daily_spend", Severity.P3, f"{shown} > {p3_of} (P3 threshold)")]
    return [_finding("daily_spend", Severity.P3, f"{shown} <= {p3_of} (P3 threshold)")]


def _token_usage(ctx: _Context) -> list[_Finding]:
    value, baseline = _finite(ctx.signal.value), _finite(ctx.signal.baseline)
    if value is None or baseline is None:
        return []
    factor = ctx.rules.token_usage_p3_factor
    limit = factor * baseline
    shown = f"token_usage {_fmt(value)}"
    of = f"{factor:g}x baseline {_fmt(baseline)} = {_fmt(limit)}"
    op = ">" if value > limit else "<="
    return [_finding("token_usage", Severity.P3, f"{shown} {op} {of} (P3 threshold)")]


def _refusals(ctx: _Context) -> list[_Finding]:
    value = _finite(ctx.signal.value)
    if value is None:
        return []
    limit = ctx.rules.refusals_p2
    if value >= limit:
        text = (
            f"refusals {_fmt(value)} >= {_fmt(limit)} (P2 threshold): consistently degraded output"
        )
        return [_finding("refusals", Severity.P2, text)]
    return [
        _finding("refusals", Severity.P3, f"refusals {_fmt(value)} < {_fmt(limit)} (P2 threshold)")
    ]


def _throughput(ctx: _Context) -> list[_Finding]:
    value = _finite(ctx.signal.value)
    if value is None:
        return []
    if value > 0:
        return [_finding("throughput", Severity.P3, f"throughput {_fmt(value)} > 0 (P2 only at 0)")]
    day = ctx.hours.day_length()
    held, how = ctx.sustained_business(day)
    if held:
        text = f"throughput 0 over a business day of {format_duration(day)} (P2 threshold; {how})"
        return [_finding("throughput", Severity.P2, text)]
    text = f"throughput 0 for less than a business day of {format_duration(day)} ({how})"
    return [_finding("throughput", Severity.P3, text, ctx.rise_after_business(day, Severity.P2))]


def _deviation(ctx: _Context) -> list[_Finding]:
    s = ctx.signal
    value, baseline, stddev = _finite(s.value), _finite(s.baseline), _finite(s.stddev)
    if value is None or baseline is None or stddev is None or stddev < 0:
        return []
    k = ctx.rules.deviation_stddevs
    off = abs(value - baseline)
    shown = f"{s.kind} {_fmt(value)} vs baseline {_fmt(baseline)}"
    band = f"{k:g} stddev = {_fmt(k * stddev)}"
    if off > k * stddev:
        need = ctx.rules.deviation_sustained_business
        held, how = ctx.sustained_business(need)
        if held:
            text = (
                f"{shown}: off by {_fmt(off)} > {band} for {format_duration(need)} of business "
                f"hours (P2 threshold; {how})"
            )
            return [_finding("deviation", Severity.P2, text)]
        text = (
            f"{shown}: off by {_fmt(off)} > {band}, not yet {format_duration(need)} of business "
            f"hours ({how}); P3 until then"
        )
        return [
            _finding("deviation", Severity.P3, text, ctx.rise_after_business(need, Severity.P2))
        ]
    text = f"{shown}: off by {_fmt(off)} <= {band}: expected variability"
    return [_finding("deviation", Severity.P3, text)]


def _not_a_number(ctx: _Context) -> list[_Finding]:
    """Say which of the signal's numbers kept every threshold rule from judging it."""
    s = ctx.signal
    found: list[_Finding] = []
    for name, x in (("value", s.value), ("baseline", s.baseline), ("stddev", s.stddev)):
        if x is not None and not math.isfinite(x):
            text = (
                f"{s.kind} {name} {non_finite_name(x)} is not a finite number: "
                "no threshold rule matches it"
            )
            found.append(_Finding(Reason("not_a_number", ctx.rules.default, text), note=True))
    return found


_KIND_RULES: Mapping[str, _Rule] = {
    "error_rate": _error_rate,
    "cost_per_run": _cost_per_run,
    "daily_spend": _daily_spend,
    "token_usage": _token_usage,
    "refusals": _refusals,
    "throughput": _throughput,
}
_HARMFUL = "harmful_output"


def _harmful(evidence: Evidence, kind: str | None) -> list[_Finding]:
    flags = evidence.delivered_externally or evidence.acted_upon
    # Flags on an alert with no measured signal are read as a report of harmful output.
    if not (evidence.harmful_output or kind == _HARMFUL or (evidence.signal is None and flags)):
        return []
    if flags:
        how = " and ".join(
            text
            for on, text in (
                (evidence.delivered_externally, "delivered externally"),
                (evidence.acted_upon, "acted upon"),
            )
            if on
        )
        facing = " (customer-facing)" if evidence.customer_facing else ""
        text = f"harmful AI output {how}{facing} (P1)"
        return [_finding(_HARMFUL, Severity.P1, text)]
    return [_finding(_HARMFUL, Severity.P3, "harmful AI output caught before delivery (P3)")]


def _hints(evidence: Evidence, rules: SeverityRules, rules_spoke: bool) -> list[_Finding]:
    found: list[_Finding] = []
    hinted = rules.severity_for_label(evidence.hint)
    # A trusted source saying "critical" is as explicit as one saying "P1".
    trusted_p1 = hinted is Severity.P1 and evidence.hint_trusted
    if trusted_p1:
        found.append(
            _finding(
                "trusted_hint",
                Severity.P1,
                f"severity hint {evidence.hint!r} from a trusted source (P1)",
            )
        )
    if rules_spoke:
        return found
    if hinted is not None and not trusted_p1:
        text = f"severity hint {evidence.hint!r} maps to {hinted} (no rule applies)"
        found.append(_finding("hint", hinted, text))
    labelled = rules.severity_for_label(evidence.label_severity)
    if labelled is not None:
        text = f"severity label {evidence.label_severity!r} maps to {labelled} (no rule applies)"
        found.append(_finding("label", labelled, text))
    return found


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


def _assess(
    evidence: Evidence, rules: SeverityRules, hours: BusinessHours, now: datetime
) -> list[_Finding]:
    _require_aware("now", now)
    for name, at in (("firing_since", evidence.firing_since), ("seen_since", evidence.seen_since)):
        if at is not None:
            _require_aware(name, at)
    if evidence.watched is not None:
        watched = evidence.watched
        return [_finding(watched.rule, watched.severity, watched.text)]
    signal = evidence.signal
    kind = signal.kind.strip().lower() if signal is not None else None
    found = _harmful(evidence, kind)
    notes: list[_Finding] = []
    if signal is not None and kind is not None and kind != _HARMFUL:
        ctx = _Context(evidence, signal, rules, hours, now)
        rule = _KIND_RULES.get(kind)
        judged = rule(ctx) if rule is not None else []
        judged += _deviation(ctx)
        if not judged:
            notes = _not_a_number(ctx)
        found += judged
    return found + _hints(evidence, rules, rules_spoke=bool(found)) + notes


def _decide(
    findings: Iterable[_Finding], rules: SeverityRules, now: datetime, floor: Severity | None = None
) -> Decision:
    unique = list(dict.fromkeys(findings))
    notes = [f for f in unique if f.note]
    verdicts = [f for f in unique if not f.note]
    if not verdicts:
        text = f"no rule matched; default {rules.default}"
        verdicts = [_finding("default", rules.default, text)]
    severity = max_severity(*(f.reason.severity for f in verdicts))
    ranked = sorted(verdicts, key=lambda f: -f.reason.severity.rank)
    reasons = tuple(f.reason for f in [*ranked, *notes])
    return Decision(
        severity, reasons, _review_at(verdicts, max_severity(severity, floor or severity), now)
    )


def _review_at(findings: Iterable[_Finding], above: Severity, now: datetime) -> datetime | None:
    times = [
        f.rise.at
        for f in findings
        if f.rise is not None and is_higher(f.rise.severity, above) and f.rise.at > now
    ]
    return min(times, default=None)


# -- public entry points -----------------------------------------------------------------------


def classify(
    evidence: Evidence, rules: SeverityRules, hours: BusinessHours, now: datetime
) -> Decision:
    """Classify one alert's evidence at `now`."""
    return _decide(_assess(evidence, rules, hours, now), rules, now)


def classify_all(
    evidences: Sequence[Evidence], rules: SeverityRules, hours: BusinessHours, now: datetime
) -> Decision:
    """Classify an incident from all its alerts: the most severe verdict, every reason kept."""
    return _decide([f for e in evidences for f in _assess(e, rules, hours, now)], rules, now)


def next_review(
    current: Severity,
    evidences: Sequence[Evidence],
    rules: SeverityRules,
    hours: BusinessHours,
    now: datetime,
) -> datetime | None:
    """Return the earliest future instant at which re-evaluation could raise above `current`."""
    findings = [f for e in evidences for f in _assess(e, rules, hours, now)]
    return _decide(findings, rules, now, floor=current).review_at


def reevaluate(
    current: Severity,
    evidences: Sequence[Evidence],
    rules: SeverityRules,
    hours: BusinessHours,
    now: datetime,
) -> Decision | None:
    """Return a new decision only if it raises the severity above `current`."""
    decision = classify_all(evidences, rules, hours, now)
    return decision if is_higher(decision.severity, current) else None


def root_cause_deadline(
    severity: Severity, since: datetime, rules: SeverityRules
) -> datetime | None:
    """Return when a P2 without a recorded root cause escalates; None for other severities."""
    return since + rules.root_cause_deadline if severity == Severity.P2 else None


def escalate_for_missing_root_cause(
    current: Severity,
    deadline: datetime | None,
    root_cause_at: datetime | None,
    now: datetime,
    rules: SeverityRules,
) -> Decision | None:
    """Return a P1 decision when a P2 has passed its deadline with no root cause recorded."""
    _require_aware("now", now)
    if current != Severity.P2 or deadline is None or now < deadline:
        return None
    if root_cause_at is not None and root_cause_at <= now:
        return None
    limit = format_duration(rules.root_cause_deadline)
    text = f"no root cause recorded within {limit} of becoming P2 (deadline {deadline.isoformat()})"
    return Decision(Severity.P1, (Reason("root_cause_deadline", Severity.P1, text),), None)
