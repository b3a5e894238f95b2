"""The hours a rotation's layer is on duty and the start a rotation counts from; pure values.

The policy file's models and the on-call resolver both use these, so they sit below both.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, field_validator

__all__ = ["ActiveWindow", "parse_rotation_start"]

_DAY = timedelta(days=1)
_ALL_DAYS = (0, 1, 2, 3, 4, 5, 6)
_DAY_NAMES = {
    "mon": 0,
    "monday": 0,
    "tue": 1,
    "tuesday": 1,
    "wed": 2,
    "wednesday": 2,
    "thu": 3,
    "thursday": 3,
    "fri": 4,
    "friday": 4,
    "sat": 5,
    "saturday": 5,
    "sun": 6,
    "sunday": 6,
}


def _weekdays(value: object) -> object:
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if isinstance(value, list | tuple):
        out: list[object] = []
        for v in value:
            if isinstance(v, str) and v.strip().lower() in _DAY_NAMES:
                out.append(_DAY_NAMES[v.strip().lower()])
            else:
                out.append(v)
        return tuple(out)
    return value


class ActiveWindow(BaseModel, frozen=True, extra="forbid"):
    """Local hours a layer is on duty; an `end` at or before `start` runs past midnight.

    `start` equal to `end` means the whole of each listed day. A window that runs past midnight
    belongs to the day it starts on (`days: [fri], start: "18:00", end: "09:00"` is Friday night).
    """

    days: Annotated[tuple[int, ...], BeforeValidator(_weekdays)] = _ALL_DAYS
    start: time = time(0, 0)
    end: time = time(0, 0)

    @field_validator("days")
    @classmethod
    def _valid_days(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        bad = [d for d in value if not 0 <= d <= 6]
        if bad:
            raise ValueError(f"weekdays must be 0-6 (Monday=0) or names such as 'sat', got {bad}")
        if not value:
            raise ValueError("at least one day is required")
        return tuple(sorted(set(value)))

    @field_validator("start", "end")
    @classmethod
    def _naive(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("window times are local wall-clock times; drop the UTC offset")
        return value

    def contains(self, local: datetime) -> bool:
        """Return whether the local wall-clock time `local` is inside the window."""
        weekday, clock = local.weekday(), local.time().replace(tzinfo=None)
        if self.start == self.end:
            return weekday in self.days
        if self.start < self.end:
            return weekday in self.days and self.start <= clock < self.end
        return (weekday in self.days and clock >= self.start) or (
            (weekday - 1) % 7 in self.days and clock < self.end
        )

    def edges(self, first: date, last: date) -> Iterator[datetime]:
        """Yield the local wall-clock times the window may open or close, days `first`..`last`."""
        day = first
        while day <= last:
            yield datetime.combine(day, self.start)
            if self.end != self.start:
                yield datetime.combine(day, self.end)
            day += _DAY


def parse_rotation_start(text: str) -> datetime:
    """Read a rotation's `start`: a date (`2026-01-05`) or a local date and time, no offset."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"start {text!r} is not a date like 2026-01-05 (or a local date and time "
            "like 2026-01-05T09:00)"
        ) from None
    if value.tzinfo is not None:
        raise ValueError(
            f"start {text!r} is a local date and time in the rotation's time zone; "
            "drop the UTC offset"
        )
    return value
