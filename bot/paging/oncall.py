"""Who is on call: rotations with local wall-clock hand-offs, layers and overrides; pure.

A rotation hands off at its `handoff_time` in its own time zone (the rotation's, else the
schedule's, else the team's), so a daylight-saving change never moves a hand-off: the shift that
contains the change is an hour shorter or longer, and no shift is skipped or doubled. A hand-off
time that does not exist on a spring-forward day (02:30 in Europe/Berlin on the last Sunday of
March) happens the moment the clocks jump; one that exists twice on a fall-back day happens at
the first of the two.

Layers stack in list order: a later layer covers the ones before it wherever it has someone on
call (a layer with `restrict` covers only its hours; before its `start` it has nobody).
Overrides sit on top of every layer; where overrides overlap, the one made last wins.

The functions take the policy file's `Schedule`/`Rotation` models (any object of that shape) and
the instant `now`; they never read a clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.paging.windows import ActiveWindow, parse_rotation_start

if TYPE_CHECKING:
    from bot.paging.policy import Rotation, Schedule

__all__ = [
    "ANCHOR_DATE",
    "ActiveWindow",
    "OnCallNow",
    "Override",
    "Segment",
    "now_and_next",
    "on_call_at",
    "parse_rotation_start",
    "timeline",
    "to_instant",
]

# a rotation without `start` counts its turns from this Monday
ANCHOR_DATE = date(2024, 1, 1)
DEFAULT_HORIZON = timedelta(days=90)
_DAY = timedelta(days=1)
_DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class Override:
    """`person` is on call from `start` to `end` (instants); a later `made` wins an overlap."""

    person: str
    start: datetime
    end: datetime
    made: int = 0


@dataclass(frozen=True)
class Segment:
    """`person` (None: nobody) is on call from `start` until `end`."""

    person: str | None
    start: datetime
    end: datetime


@dataclass(frozen=True)
class OnCallNow:
    """Who is on call now, until when, and who comes next (None: nobody, or no change ahead)."""

    person: str | None
    until: datetime | None
    next_person: str | None


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def to_instant(local: datetime, zone: ZoneInfo) -> datetime:
    """Return the UTC instant of a local wall-clock time in `zone`.

    A time that exists twice (fall-back) is the first; one that does not exist (spring-forward)
    is the moment the clocks jump past it. So the mapping never goes backwards in time.
    """
    naive = local.replace(tzinfo=None, fold=0)
    first = naive.replace(tzinfo=zone).astimezone(UTC)
    if _wall(first, zone) == naive:
        return first
    # in a gap: `fold=1` reads it with the offset after the change (too early), `fold=0` with the
    # one before (too late); the jump is in between, found to the second
    lo = int(naive.replace(tzinfo=zone, fold=1).astimezone(UTC).timestamp())
    hi = math.ceil(first.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _wall(datetime.fromtimestamp(mid, UTC), zone) >= naive:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


class _Layer:
    """One rotation's shifts as instants: shift k starts at `shift_start(k)`, k >= 0."""

    def __init__(self, rotation: Rotation, zone: ZoneInfo) -> None:
        self.users = list(rotation.users)
        self.zone = zone
        self.restrict = rotation.restrict
        if rotation.period == "daily":
            self.step = _DAY
        elif rotation.period == "weekly":
            self.step = 7 * _DAY
        else:
            assert rotation.custom_period is not None
            self.step = rotation.custom_period
        hand_off = rotation.handoff_time.replace(tzinfo=None)
        if rotation.start is None:
            anchor = datetime.combine(ANCHOR_DATE, hand_off)
        elif _DATE_ONLY.fullmatch(rotation.start.strip()):
            anchor = datetime.combine(parse_rotation_start(rotation.start).date(), hand_off)
        else:
            anchor = parse_rotation_start(rotation.start)
        if rotation.period == "daily":
            origin = datetime.combine(anchor.date(), hand_off)
        elif rotation.period == "weekly":
            back = (anchor.weekday() - rotation.handoff_day) % 7
            origin = datetime.combine(anchor.date() - back * _DAY, hand_off)
        else:
            origin = anchor
        # the grid is origin + j * step in wall-clock time; the first turn starts at the anchor
        self.origin = origin
        self.anchor = anchor
        self.first_j = -((origin - anchor) // self.step)  # smallest j with grid(j) >= anchor
        self.offset = 0 if self._grid(self.first_j) == anchor else 1
        self._cache: dict[int, datetime] = {}

    def _grid(self, j: int) -> datetime:
        return self.origin + j * self.step

    def shift_start(self, k: int) -> datetime:
        """Return the instant shift `k` begins."""
        cached = self._cache.get(k)
        if cached is None:
            local = self.anchor if k < self.offset else self._grid(self.first_j + k - self.offset)
            cached = to_instant(local, self.zone)
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[k] = cached
        return cached

    def shift_at(self, at: datetime) -> int | None:
        """Return the index of the shift running at `at`, or None before the first."""
        if at < self.shift_start(0):
            return None
        j = (_wall(at, self.zone) - self.origin) // self.step
        k = max(0, j - self.first_j + self.offset)
        while k > 0 and self.shift_start(k) > at:
            k -= 1
        while self.shift_start(k + 1) <= at:
            k += 1
        return k

    def person_at(self, at: datetime) -> str | None:
        if not self.users:
            return None
        k = self.shift_at(at)
        if k is None:
            return None
        if self.restrict is not None and not self.restrict.contains(_wall(at, self.zone)):
            return None
        return self.users[k % len(self.users)]

    def changes(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """Yield instants in (after, until] at which this layer's person may change."""
        if not self.users:
            return
        k = self.shift_at(after)
        k = 0 if k is None else k + 1
        while (start := self.shift_start(k)) <= until:
            if start > after:
                yield start
            k += 1
        if self.restrict is not None:
            first = _wall(after, self.zone).date() - _DAY
            last = _wall(until, self.zone).date() + _DAY
            for edge in self.restrict.edges(first, last):
                instant = to_instant(edge, self.zone)
                if after < instant <= until:
                    yield instant


def _zone(schedule: Schedule, rotation: Rotation, default_tz: str) -> ZoneInfo:
    return ZoneInfo(rotation.timezone or schedule.timezone or default_tz)


class _Resolver:
    def __init__(self, schedule: Schedule, overrides: Iterable[Override], default_tz: str) -> None:
        self.layers = [_Layer(r, _zone(schedule, r, default_tz)) for r in schedule.layers]
        self.overrides = sorted(
            (o for o in overrides if o.end > o.start), key=lambda o: (o.made, o.start)
        )

    def person_at(self, at: datetime) -> str | None:
        for override in reversed(self.overrides):
            if override.start <= at < override.end:
                return override.person
        for layer in reversed(self.layers):
            person = layer.person_at(at)
            if person is not None:
                return person
        return None

    def changes(self, after: datetime, until: datetime) -> list[datetime]:
        found: set[datetime] = set()
        for layer in self.layers:
            found.update(layer.changes(after, until))
        for override in self.overrides:
            for edge in (override.start, override.end):
                if after < edge <= until:
                    found.add(edge)
        return sorted(found)


def on_call_at(
    schedule: Schedule,
    at: datetime,
    overrides: Sequence[Override] = (),
    default_tz: str = "UTC",
) -> str | None:
    """Return who is on call at the instant `at` (None: nobody)."""
    return _Resolver(schedule, overrides, default_tz).person_at(_aware("at", at))


def timeline(
    schedule: Schedule,
    start: datetime,
    end: datetime,
    overrides: Sequence[Override] = (),
    default_tz: str = "UTC",
) -> list[Segment]:
    """Return who is on call from `start` to `end` as consecutive segments, merged by person."""
    lo, hi = _aware("start", start), _aware("end", end)
    if hi <= lo:
        return []
    resolver = _Resolver(schedule, overrides, default_tz)
    segments: list[Segment] = []
    current, since = resolver.person_at(lo), lo
    for instant in resolver.changes(lo, hi):
        if instant >= hi:
            break
        person = resolver.person_at(instant)
        if person != current:
            segments.append(Segment(current, since, instant))
            current, since = person, instant
    segments.append(Segment(current, since, hi))
    return segments


def now_and_next(
    schedule: Schedule,
    now: datetime,
    overrides: Sequence[Override] = (),
    default_tz: str = "UTC",
    horizon: timedelta = DEFAULT_HORIZON,
) -> OnCallNow:
    """Return who is on call at `now`, until when, and who follows (looking `horizon` ahead)."""
    at = _aware("now", now)
    resolver = _Resolver(schedule, overrides, default_tz)
    current = resolver.person_at(at)
    for instant in resolver.changes(at, at + horizon):
        person = resolver.person_at(instant)
        if person != current:
            return OnCallNow(current, instant, person)
    return OnCallNow(current, None, None)
