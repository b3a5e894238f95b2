"""Field types the policy file's models share: frozen models, durations, IANA time zone names."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from bot.domain.severity import parse_duration

__all__ = ["Duration", "FrozenModel", "TimeZoneName"]


class FrozenModel(BaseModel):
    """A settings model of the policy file: unknown keys are errors, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


def _known_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin' or 'UTC'"
        ) from exc
    return name


# checked per field (not in the cross-reference pass) so it is reported with the other field errors
TimeZoneName = Annotated[str, AfterValidator(_known_zone)]
