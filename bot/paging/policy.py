"""The paging sections of the policy file as values: schedules, escalation policies, providers.

`bot.config` reads the file into these models; the paging domain works on them, and on the
slice of the whole policy that `PagingPolicy` describes, without importing the file's loader.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, Field, create_model, field_validator, model_validator
from pydantic_core import PydanticCustomError

from bot.domain.calendar import BusinessHours
from bot.domain.fields import Duration, FrozenModel, TimeZoneName
from bot.domain.people import Person, Roles
from bot.paging.channels import (
    CHANNEL_NAMES,
    PERSON_CHANNELS,
    PROVIDER_CHANNELS,
    configured,
    paging_keys,
)
from bot.paging.windows import ActiveWindow, parse_rotation_start

__all__ = [
    "ChannelName",
    "EscalationPolicy",
    "EscalationStep",
    "EscalationTarget",
    "PagingPolicy",
    "PagingProviders",
    "Rotation",
    "Schedule",
]


def _known_channel(value: str) -> str:
    if value not in CHANNEL_NAMES:
        names = [repr(n) for n in CHANNEL_NAMES]
        expected = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
        raise PydanticCustomError(
            "literal_error", "Input should be {expected}", {"expected": expected}
        )
    return value


# a channel a step pages through: Slack DM or a registered provider (bot.paging.channels)
ChannelName = Annotated[str, AfterValidator(_known_channel)]


class Rotation(FrozenModel):
    """One layer of a schedule: `users` take turns, handing off at local wall-clock times.

    `start` is a date (`2026-01-05`, first hand-off at `handoff_time` that day) or a local date
    and time; before it the layer has nobody. `restrict` limits the layer to local hours (e.g.
    nights or weekends); a later layer covers the ones before it wherever it has someone on call.
    """

    users: list[str]
    period: Literal["daily", "weekly", "custom"] = "weekly"
    custom_period: Duration | None = None
    handoff_time: time = time(9, 0)
    handoff_day: int = Field(default=0, ge=0, le=6)
    start: str | None = None
    timezone: TimeZoneName | None = None
    restrict: ActiveWindow | None = None

    @model_validator(mode="after")
    def _custom_needs_length(self) -> Rotation:
        if self.period == "custom" and self.custom_period is None:
            raise ValueError("period 'custom' needs custom_period (e.g. '3d')")
        return self

    @field_validator("custom_period")
    @classmethod
    def _at_least_an_hour(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(hours=1):
            raise ValueError("custom_period must be at least 1h")
        return value

    @field_validator("start")
    @classmethod
    def _start_is_a_date(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rotation_start(value)
        return value

    @field_validator("handoff_time")
    @classmethod
    def _local_time(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("handoff_time is a local wall-clock time; drop the UTC offset")
        return value


class Schedule(FrozenModel):
    timezone: TimeZoneName | None = None
    layers: list[Rotation]


class EscalationTarget(FrozenModel):
    schedule: str | None = None
    person: str | None = None
    role: Literal["ai_lead", "founder", "responders", "reviewers"] | None = None
    user_group: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> EscalationTarget:
        chosen = [f for f in ("schedule", "person", "role", "user_group") if getattr(self, f)]
        if len(chosen) != 1:
            raise ValueError("name exactly one of schedule, person, role, user_group")
        return self


class EscalationStep(FrozenModel):
    notify: list[EscalationTarget]
    channels: list[ChannelName] = ["slack_dm"]
    wait: Duration = timedelta(minutes=10)


class EscalationPolicy(FrozenModel):
    steps: list[EscalationStep]
    repeat: int = Field(default=0, ge=0, le=10)


class _PagingKeys(FrozenModel):
    """The `paging` section: one optional text per key a registered provider reads."""

    def text(self, key: str) -> str | None:
        """Return the key's value as written (after `${VAR}` interpolation), None when unset."""
        found: Any = getattr(self, key, None)
        return found if isinstance(found, str) else None

    def value(self, key: str) -> str | None:
        """Return the key's value, None when it is unset or empty."""
        return self.text(key) or None

    def configured(self, channel: str) -> bool:
        """Return True if `channel` can page with these keys (Slack DM always can)."""
        return configured(channel, self.value)

    def person_channels(self) -> list[str]:
        """Channels for a page to one person outside a policy step: Slack DM and those set up."""
        return [c for c in PERSON_CHANNELS if self.configured(c)]

    def every_channel(self) -> list[str]:
        """Slack DM and every provider set up (paging the on-call by hand)."""
        return [c for c in CHANNEL_NAMES if self.configured(c)]

    def any_provider(self) -> bool:
        """Return True if a provider is configured (people without a Slack id are reachable)."""
        return any(self.configured(c) for c in PROVIDER_CHANNELS)


if TYPE_CHECKING:
    PagingProviders = _PagingKeys
else:
    # the fields come from the registrations, so a new provider's keys need no edit here
    PagingProviders = create_model(
        "PagingProviders",
        __base__=_PagingKeys,
        __module__=__name__,
        **{key: (str | None, None) for key in paging_keys()},
    )


class _Workflow(Protocol):
    @property
    def escalation_policy(self) -> str | None: ...


class PagingPolicy(Protocol):
    """The slice of the policy file paging decides with."""

    @property
    def timezone(self) -> str: ...
    @property
    def people(self) -> Mapping[str, Person]: ...
    @property
    def roles(self) -> Roles: ...
    @property
    def schedules(self) -> Mapping[str, Schedule]: ...
    @property
    def escalation_policies(self) -> Mapping[str, EscalationPolicy]: ...
    @property
    def default_escalation_policy(self) -> str | None: ...
    @property
    def paging(self) -> PagingProviders: ...
    @property
    def hours(self) -> BusinessHours: ...

    def workflow(self, name: str) -> _Workflow: ...
