"""Escalation: the policy frozen when an incident opens, the step due next, who to reach; pure.

A snapshot holds the steps, the repeat count, the schedules the steps name, the role members
and the people's contact details as they were when the incident opened, stored as JSON: editing
the policy file never changes a running escalation. Who is on call is still worked out when a
step fires (overrides made meanwhile count).

The state is (step, round, next_at): the step to fire next, in which round, and when. Firing step
i of round r sets the next step at `now + wait_i`; after the last step of the last round the
escalation is exhausted once that step's wait has passed. `repeat: N` runs the steps N more times
after the first round.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, Literal

from bot.domain.calendar import BusinessHours
from bot.paging.channels import CHANNEL_LABELS, PERSON_CHANNELS, PROVIDER_CHANNELS
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
    "CHANNEL_LABELS",
    "PERSON_CHANNELS",
    "PROVIDER_CHANNELS",
    "Contact",
    "Due",
    "EscalationState",
    "Exhausted",
    "Fire",
    "Reach",
    "Snapshot",
    "StepSpec",
    "Target",
    "Unreachable",
    "contact_in",
    "due_now",
    "looks_like_slack_user",
    "next_open",
    "next_step",
    "policy_for",
    "resolve_targets",
    "split_members",
    "start",
    "take_snapshot",
    "unreachable_people",
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


# -- the state machine ------------------------------------------------------------------------


@dataclass(frozen=True)
class EscalationState:
    """Fire step `step` of round `round` (0-based) at `next_at`."""

    step: int
    round: int
    next_at: datetime


@dataclass(frozen=True)
class Fire:
    """Fire `step` (index `index`) of round `round`; then the state is `after`."""

    index: int
    round: int
    step: StepSpec
    after: EscalationState

    def describe(self, snapshot: Snapshot) -> str:
        rounds = snapshot.repeat + 1
        where = f"step {self.index + 1} of {len(snapshot.steps)}"
        return where + (f", round {self.round + 1} of {rounds}" if rounds > 1 else "")


@dataclass(frozen=True)
class Exhausted:
    """Every step of every round fired and nobody acknowledged."""

    rounds: int


def start(now: datetime) -> EscalationState:
    """Return the state of an escalation that starts at `now`: step 1 at once."""
    return EscalationState(step=0, round=0, next_at=now)


def next_step(snapshot: Snapshot, state: EscalationState, now: datetime) -> Fire | Exhausted | None:
    """Return what is due at `now`: a step to fire, exhaustion, or None (nothing yet)."""
    if now < state.next_at:
        return None
    steps = snapshot.steps
    if not steps or state.step >= len(steps) or state.round > snapshot.repeat:
        return Exhausted(rounds=state.round + 1 if steps else 0)
    step = steps[state.step]
    then = now + step.wait
    if state.step + 1 < len(steps):
        after = EscalationState(step=state.step + 1, round=state.round, next_at=then)
    elif state.round < snapshot.repeat:
        after = EscalationState(step=0, round=state.round + 1, next_at=then)
    else:
        after = EscalationState(step=len(steps), round=state.round, next_at=then)
    return Fire(index=state.step, round=state.round, step=step, after=after)


@dataclass(frozen=True)
class Due:
    """What an escalation does at `now`: the steps to fire in order, then the state it is in.

    `waits` is set when a business-hours escalation has a step due outside business hours:
    nothing fires and `state.next_at` is the next opening. `exhausted` is set when the last
    step's wait passed unacknowledged.
    """

    fires: tuple[Fire, ...]
    state: EscalationState
    waits: bool = False
    exhausted: Exhausted | None = None


def due_now(
    snapshot: Snapshot,
    state: EscalationState,
    now: datetime,
    business_hours: BusinessHours | None = None,
) -> Due:
    """Return everything due at `now`; with `business_hours`, steps fire only while open."""
    fires: list[Fire] = []
    for _ in range(len(snapshot.steps) * (snapshot.repeat + 1) + 2):
        if state.next_at > now:
            break
        if business_hours is not None and not business_hours.is_open(now):
            waiting = EscalationState(state.step, state.round, next_open(business_hours, now))
            return Due(tuple(fires), waiting, waits=True)
        due = next_step(snapshot, state, now)
        if due is None:
            break
        if isinstance(due, Exhausted):
            return Due(tuple(fires), state, exhausted=due)
        fires.append(due)
        state = due.after
    return Due(tuple(fires), state)


def next_open(hours: BusinessHours, now: datetime) -> datetime:
    """Return `now` during business hours, else the instant they next open."""
    if hours.is_open(now):
        return now
    second = timedelta(seconds=1)
    return hours.add_business_time(now, second) - second


# -- who a step reaches -----------------------------------------------------------------------


@dataclass(frozen=True)
class Reach:
    """The people a step reaches (person keys, in order), user groups to expand, and gaps."""

    people: tuple[str, ...]
    groups: tuple[str, ...]
    gaps: tuple[str, ...]


def resolve_targets(
    snapshot: Snapshot, targets: Sequence[Target], on_call: Callable[[str], str | None]
) -> Reach:
    """Work out who `targets` reach; `on_call(schedule)` says who is on call there now."""
    people: list[str] = []
    groups: list[str] = []
    gaps: list[str] = []

    def add_member(member: str) -> None:
        if member.startswith("group:"):
            groups.append(member.removeprefix("group:"))
        else:
            people.append(member)

    for target in targets:
        if target.kind == "schedule":
            if target.ref not in snapshot.schedules:
                gaps.append(f"schedule {target.ref} is not defined")
                continue
            person = on_call(target.ref)
            if person is None:
                gaps.append(f"nobody is on call in schedule {target.ref}")
            else:
                people.append(person)
        elif target.kind == "person":
            people.append(target.ref)
        elif target.kind == "role":
            members = snapshot.roles.get(target.ref, ())
            if not members:
                gaps.append(f"nobody holds role {target.ref}")
            for member in members:
                add_member(member)
        else:
            groups.append(target.ref)
    return Reach(
        people=tuple(dict.fromkeys(people)),
        groups=tuple(dict.fromkeys(groups)),
        gaps=tuple(gaps),
    )


# -- who cannot be reached --------------------------------------------------------------------


@dataclass(frozen=True)
class Unreachable:
    """A person who may be paged (`where`: the field paths naming them) but cannot be reached."""

    person: str
    where: tuple[str, ...]


def _paging_references(policy: PagingPolicy) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}

    def note(person: str, path: str) -> None:
        if not person.startswith("group:"):
            found.setdefault(person, []).append(path)

    roles_paged = {"ai_lead", "founder"}
    for name, pol in policy.escalation_policies.items():
        for i, step in enumerate(pol.steps):
            for j, target in enumerate(step.notify):
                if target.person:
                    note(target.person, f"escalation_policies.{name}.steps.{i}.notify.{j}.person")
                if target.role:
                    roles_paged.add(target.role)
    for role in sorted(roles_paged):
        for i, member in enumerate(getattr(policy.roles, role)):
            note(member, f"roles.{role}.{i}")
    for name, schedule in policy.schedules.items():
        for i, layer in enumerate(schedule.layers):
            for j, user in enumerate(layer.users):
                note(user, f"schedules.{name}.layers.{i}.users.{j}")
    return found


def unreachable_people(policy: PagingPolicy) -> list[Unreachable]:
    """Return the people who may be paged but have no Slack id while no provider is configured."""
    if policy.paging.any_provider():
        return []
    out = []
    for person, where in _paging_references(policy).items():
        known = policy.people.get(person)
        if known is None or not known.slack_id:
            out.append(Unreachable(person=person, where=tuple(where)))
    return sorted(out, key=lambda u: u.person)
