"""Business hours: local wall-clock windows on chosen weekdays, DST-correct."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, field_validator, model_validator

__all__ = ["BusinessHours"]

_DAY = timedelta(days=1)
_MIDNIGHT = time(0, 0)
_DAY_NAMES = {
    name: index
    for index, names in enumerate(
        (
            ("mon", "monday"),
            ("tue", "tues", "tuesday"),
            ("wed", "wednesday"),
            ("thu", "thur", "thurs", "thursday"),
            ("fri", "friday"),
            ("sat", "saturday"),
            ("sun", "sunday"),
        )
    )
    for name in names
}


def _weekday(value: object) -> object:
    if isinstance(value, str):
        key = value.strip().lower()
        if key in _DAY_NAMES:
            return _DAY_NAMES[key]
        if key.isdigit():
            return int(key)
        raise ValueError(f"unknown weekday {value!r}; use 0-6 (Monday=0) or a name such as 'mon'")
    return value


def _weekdays(value: object) -> object:
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(_weekday(v) for v in value)
    return value


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin' or 'UTC'"
        ) from exc


def _require_aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


class BusinessHours(BaseModel, frozen=True, extra="forbid"):
    """Weekly business hours in one time zone; `end` 00:00 means until midnight.

    Each open day's window runs from `start` to `end` local wall-clock time. A wall-clock time that
    does not exist or exists twice on a DST change day resolves to the first offset that applies
    before the change (Python's `fold=0`).
    """

    timezone: str = "UTC"
    days: Annotated[tuple[int, ...], BeforeValidator(_weekdays)] = (0, 1, 2, 3, 4)
    start: time = time(9, 0)
    end: time = time(17, 0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        _zone(value)
        return value

    @field_validator("days")
    @classmethod
    def _valid_days(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        bad = [d for d in value if not 0 <= d <= 6]
        if bad:
            raise ValueError(f"weekdays must be 0-6 (Monday=0), got {bad}")
        if not value:
            raise ValueError("at least one business day is required")
        return tuple(sorted(set(value)))

    @field_validator("start", "end")
    @classmethod
    def _naive_time(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("business hours are local wall-clock times; drop the UTC offset")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> BusinessHours:
        if self.end != _MIDNIGHT and self.end <= self.start:
            raise ValueError(
                f"business hours end {self.end.isoformat()} must be after start "
                f"{self.start.isoformat()} (use 00:00 for midnight)"
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        """Return the time zone."""
        return _zone(self.timezone)

    def day_length(self) -> timedelta:
        """Return the nominal length of one business day in wall-clock time."""
        base = datetime.combine(date.min, _MIDNIGHT)
        end = _DAY if self.end == _MIDNIGHT else datetime.combine(date.min, self.end) - base
        return end - (datetime.combine(date.min, self.start) - base)

    def is_open(self, at: datetime) -> bool:
        """Return whether business hours are open at the instant `at`."""
        instant = _require_aware("at", at)
        local_day = instant.astimezone(self.zone).date()
        return any(
            ws <= instant < we for ws, we in self._windows(local_day - _DAY, local_day + _DAY)
        )

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Return the business time elapsed from `start` to `end` (zero when `end` <= `start`)."""
        lo = _require_aware("start", start)
        hi = _require_aware("end", end)
        if hi <= lo:
            return timedelta(0)
        zone = self.zone
        total = timedelta(0)
        first = lo.astimezone(zone).date() - _DAY
        last = hi.astimezone(zone).date() + _DAY
        for ws, we in self._windows(first, last):
            overlap = min(we, hi) - max(ws, lo)
            if overlap > timedelta(0):
                total += overlap
        return total

    def add_business_time(self, start: datetime, amount: timedelta) -> datetime:
        """Return the first instant at which `amount` of business time has elapsed after `start`."""
        lo = _require_aware("start", start)
        if amount < timedelta(0):
            raise ValueError(f"amount must not be negative, got {amount}")
        if amount == timedelta(0):
            return start
        remaining = amount
        for ws, we in self._windows_from(lo.astimezone(self.zone).date() - _DAY):
            begin = max(ws, lo)
            if we <= begin:
                continue
            if remaining <= we - begin:
                return (begin + remaining).astimezone(start.tzinfo)
            remaining -= we - begin
        raise AssertionError("unreachable: business windows never run out")

    def open_windows(self, first: date, last: date) -> list[tuple[datetime, datetime]]:
        """Return the open windows of local days `first`..`last` as ordered UTC pairs."""
        return list(self._windows(first, last))

    def _windows(self, first: date, last: date) -> Iterator[tuple[datetime, datetime]]:
        """Yield the open windows of local days `first`..`last` as ordered, disjoint UTC pairs."""
        for day, window in self._windows_by_day(first):
            if day > last:
                return
            if window is not None:
                yield window

    def _windows_from(self, first: date) -> Iterator[tuple[datetime, datetime]]:
        """Yield the open windows of local days from `first` on, endlessly."""
        for _day, window in self._windows_by_day(first):
            if window is not None:
                yield window

    def _windows_by_day(
        self, first: date
    ) -> Iterator[tuple[date, tuple[datetime, datetime] | None]]:
        # Looks one day back so that a window clipped by its predecessor (possible only around
        # DST changes) is clipped the same way whichever day a caller starts from.
        zone = self.zone
        previous_end: datetime | None = None
        day = first - _DAY
        while True:
            window: tuple[datetime, datetime] | None = None
            if day.weekday() in self.days:
                ws = datetime.combine(day, self.start, tzinfo=zone).astimezone(UTC)
                end_day = day + _DAY if self.end == _MIDNIGHT else day
                we = datetime.combine(end_day, self.end, tzinfo=zone).astimezone(UTC)
                if previous_end is not None and ws < previous_end:
                    ws = previous_end
                if we > ws:
                    window = (ws, we)
                    previous_end = we
            if day >= first:
                yield day, window
            day += _DAY
