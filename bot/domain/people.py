"""The people of the policy file and the roles they hold; pure values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol

from pydantic import Field

from bot.domain.fields import FrozenModel
from bot.domain.incidents import SYSTEM

__all__ = ["Directory", "Person", "Roles", "display_name", "person_by_account", "person_by_slack"]

_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")


class Person(FrozenModel):
    name: str | None = None
    slack_id: str | None = Field(default=None, pattern=r"^[UW][A-Z0-9]{2,}$")
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    jira_account: str | None = None
    phone: str | None = None


class Roles(FrozenModel):
    """Role members are person ids or Slack user groups written `group:S0123ABC`."""

    ai_lead: list[str] = []
    founder: list[str] = []
    responders: list[str] = []
    reviewers: list[str] = []


class Directory(Protocol):
    """Who the policy file names: its people by id."""

    @property
    def people(self) -> Mapping[str, Person]: ...


def person_by_slack(directory: Directory, slack_id: str) -> Person | None:
    """Return the person of the policy file with this Slack id."""
    return next((p for p in directory.people.values() if p.slack_id == slack_id), None)


def person_by_account(directory: Directory, account: str | None) -> Person | None:
    """Return the person of the policy file with this Jira account (accountId or user name)."""
    if not account:
        return None
    return next((p for p in directory.people.values() if p.jira_account == account), None)


def display_name(directory: Directory, actor: str) -> str:
    """Name who did it: a person by name, a Slack user by id, else the alert source."""
    person = person_by_slack(directory, actor)
    if person is not None and person.name:
        return person.name
    if actor == SYSTEM or _SLACK_USER.match(actor):
        return actor
    return f"source {actor}"
