"""The people of the policy file and the roles they hold; pure values."""

from __future__ import annotations

from pydantic import Field

from bot.domain.fields import FrozenModel

__all__ = ["Person", "Roles"]


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
