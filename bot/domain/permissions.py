"""Who may do what (§10): role membership by person or Slack user group, pure."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

from bot.domain.people import Person, Roles

__all__ = ["Directory", "has_role", "person_of"]

ROLE_NAMES = ("ai_lead", "founder", "responders", "reviewers")


class Directory(Protocol):
    """The people and roles of the policy file (`bot.config.Policy` is one)."""

    @property
    def people(self) -> Mapping[str, Person]: ...
    @property
    def roles(self) -> Roles: ...


def person_of(policy: Directory, slack_user: str) -> str | None:
    """Return the policy's person id for a Slack user id, if the file names one."""
    for person_id, person in policy.people.items():
        if person.slack_id == slack_user:
            return person_id
    return None


def has_role(
    policy: Directory,
    role: str,
    slack_user: str,
    group_members: Mapping[str, Collection[str]] | None = None,
) -> bool:
    """Return True if the Slack user holds `role`.

    Members are person ids or `group:<Slack user group id>`; group membership comes from the
    caller (looked up in Slack). A role nobody is listed under is open to everyone, so a team
    that has not set roles up yet is not locked out of its own incidents.
    """
    members: list[str] = getattr(policy.roles, role)
    if not members:
        return True
    person = person_of(policy, slack_user)
    groups = group_members or {}
    for member in members:
        if member.startswith("group:"):
            if slack_user in groups.get(member.removeprefix("group:"), ()):
                return True
        elif member == person:
            return True
    return False
