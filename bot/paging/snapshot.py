"""The escalation policy frozen when an incident opens, with whom it names; pure.

A snapshot holds the steps, the repeat count, the schedules the steps name, the role members
and the people's contact details as they were when the incident opened, stored as JSON: editing
the policy file never changes a running escalation. Who is on call is still worked out when a
step fires (overrides made meanwhile count).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import time, timedelta
from typing import Any, Literal

from bot.paging.policy import (
    EscalationPolicy,
    EscalationStep,
    EscalationTarget,
    PagingPolicy,
    Schedule,
)

__all__ = [
    "BUILTIN_POLICY",
    "BUILTIN_POLICY_NAME",
    "Channel",
    "Contact",
    "Snapshot",
    "StepSpec",
    "Target",
    "contact_in",
    "looks_like_slack_user",
    "policy_for",
    "split_members",
    "take_snapshot",
]

# a channel's name: Slack DM or a registered provider (bot.paging.channels)
Channel = str

BUILTIN_POLICY_NAME = "built-in"
# used when a workflow names no policy and the file sets no default_escalation_policy
BUILTIN_POLICY = EscalationPolicy(
    steps=[
        EscalationStep(
            notify=[EscalationTarget(role="ai_lead")],
            channels=["slack_dm"],
            wait=timedelta(minutes=15),
        )
    ],
    repeat=2,
)


@dataclass(frozen=True)
class Target:
    kind: Literal["schedule", "person", "role", "user_group"]
    ref: str

    def describe(self) -> str:
        """Return the target in words, e.g. "the on-call of schedule primary"."""
        if self.kind == "schedule":
            return f"the on-call of schedule {self.ref}"
        if self.kind == "role":
            return f"role {self.ref}"
        if self.kind == "user_group":
            return f"user group {self.ref}"
        return self.ref


@dataclass(frozen=True)
class StepSpec:
    targets: tuple[Target, ...]
    channels: tuple[Channel, ...]
    wait: timedelta


@dataclass(frozen=True)
class Contact:
    """How to reach a person; `person` is the policy's person id (or a bare Slack user id)."""

    person: str
    name: str | None = None
    slack_id: str | None = None
    email: str | None = None
    phone: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.person


@dataclass(frozen=True)
class Snapshot:
    """An escalation policy frozen with what it needs to run."""

    policy: str
    steps: tuple[StepSpec, ...]
    repeat: int
    timezone: str
    schedules: Mapping[str, Schedule] = field(default_factory=dict)
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    people: Mapping[str, Contact] = field(default_factory=dict)

    def contact(self, person: str, policy: PagingPolicy | None = None) -> Contact:
        """Return the person's contact as snapshotted, else from `policy`, else a bare Slack id."""
        found = self.people.get(person)
        if found is not None:
            return found
        if policy is not None and person in policy.people:
            return _contact(person, policy)
        slack_id = person if looks_like_slack_user(person) else None
        return Contact(person=person, slack_id=slack_id)

    def to_json(self) -> dict[str, Any]:
        """Return the snapshot as JSON-ready data (`from_json` reads it back)."""
        return {
            "policy": self.policy,
            "repeat": self.repeat,
            "timezone": self.timezone,
            "steps": [
                {
                    "targets": [{"kind": t.kind, "ref": t.ref} for t in s.targets],
                    "channels": list(s.channels),
                    "wait_s": s.wait.total_seconds(),
                }
                for s in self.steps
            ],
            "schedules": {
                name: _jsonable(schedule.model_dump()) for name, schedule in self.schedules.items()
            },
            "roles": {role: list(members) for role, members in self.roles.items()},
            "people": {
                key: {
                    "name": c.name,
                    "slack_id": c.slack_id,
                    "email": c.email,
                    "phone": c.phone,
                }
                for key, c in self.people.items()
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Snapshot:
        """Read a snapshot stored by `to_json`."""
        return cls(
            policy=str(data["policy"]),
            repeat=int(data["repeat"]),
            timezone=str(data["timezone"]),
            steps=tuple(
                StepSpec(
                    targets=tuple(Target(kind=t["kind"], ref=str(t["ref"])) for t in s["targets"]),
                    channels=tuple(s["channels"]),
                    wait=timedelta(seconds=float(s["wait_s"])),
                )
                for s in data["steps"]
            ),
            schedules={
                name: Schedule.model_validate(raw)
                for name, raw in dict(data.get("schedules") or {}).items()
            },
            roles={role: tuple(m) for role, m in dict(data.get("roles") or {}).items()},
            people={
                key: Contact(
                    person=key,
                    name=c.get("name"),
                    slack_id=c.get("slack_id"),
                    email=c.get("email"),
                    phone=c.get("phone"),
                )
                for key, c in dict(data.get("people") or {}).items()
            },
        )


def _jsonable(value: Any) -> Any:
    """Turn a policy model dump into JSON the models read back (durations as seconds)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, time):
        return value.isoformat()
    return value


def looks_like_slack_user(value: str) -> bool:
    """Return True for a Slack user id (U… or W…), as a mention carries it."""
    return len(value) >= 3 and value[0] in "UW" and value.isalnum() and value.isupper()


def _contact(person: str, policy: PagingPolicy) -> Contact:
    p = policy.people[person]
    return Contact(person=person, name=p.name, slack_id=p.slack_id, email=p.email, phone=p.phone)


def contact_in(policy: PagingPolicy, person: str, snapshot: Snapshot | None = None) -> Contact:
    """Return how to reach `person`: as the snapshot has it, else the policy, else a bare id."""
    if snapshot is not None:
        return snapshot.contact(person, policy)
    if person in policy.people:
        return _contact(person, policy)
    return Contact(person=person, slack_id=person if looks_like_slack_user(person) else None)


def split_members(members: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split role members into person keys and Slack user group ids (`group:S…`)."""
    people = [m for m in members if not m.startswith("group:")]
    groups = [m.removeprefix("group:") for m in members if m.startswith("group:")]
    return people, groups


def policy_for(policy: PagingPolicy, workflow: str) -> tuple[str, EscalationPolicy]:
    """Return the name and escalation policy a workflow's incidents follow."""
    name = policy.workflow(workflow).escalation_policy or policy.default_escalation_policy
    if name and name in policy.escalation_policies:
        return name, policy.escalation_policies[name]
    return BUILTIN_POLICY_NAME, BUILTIN_POLICY


def _target(t: EscalationTarget) -> Target:
    if t.schedule:
        return Target("schedule", t.schedule)
    if t.person:
        return Target("person", t.person)
    if t.role:
        return Target("role", t.role)
    assert t.user_group
    return Target("user_group", t.user_group.removeprefix("group:"))


def take_snapshot(policy: PagingPolicy, workflow: str) -> Snapshot:
    """Freeze the escalation policy of `workflow` with the schedules, roles and people it uses."""
    name, chosen = policy_for(policy, workflow)
    steps = tuple(
        StepSpec(
            targets=tuple(_target(t) for t in s.notify),
            channels=tuple(dict.fromkeys(s.channels)),
            wait=s.wait,
        )
        for s in chosen.steps
    )
    schedules = {
        t.ref: policy.schedules[t.ref].model_copy(
            update={"timezone": policy.schedules[t.ref].timezone or policy.timezone}
        )
        for s in steps
        for t in s.targets
        if t.kind == "schedule" and t.ref in policy.schedules
    }
    # the AI lead and the founder are reached by the severity rules whatever the policy says
    role_names = {"ai_lead", "founder"} | {
        t.ref for s in steps for t in s.targets if t.kind == "role"
    }
    roles = {role: tuple(getattr(policy.roles, role)) for role in sorted(role_names)}
    people: set[str] = {t.ref for s in steps for t in s.targets if t.kind == "person"}
    people.update(m for members in roles.values() for m in members if not m.startswith("group:"))
    people.update(u for sch in schedules.values() for layer in sch.layers for u in layer.users)
    return Snapshot(
        policy=name,
        steps=steps,
        repeat=chosen.repeat,
        timezone=policy.timezone,
        schedules=schedules,
        roles=roles,
        people={p: _contact(p, policy) for p in sorted(people) if p in policy.people},
    )
