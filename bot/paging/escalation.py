"""Escalation: the step due next, everything due at a tick, who a step reaches; pure.

The policy is frozen in a `Snapshot` when the incident opens (bot.paging.snapshot). The state
is (step, round, next_at): the step to fire next, in which round, and when. Firing step i of
round r sets the next step at `now + wait_i`; after the last step of the last round the
escalation is exhausted once that step's wait has passed. `repeat: N` runs the steps N more
times after the first round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.calendar import BusinessHours
from bot.paging.channels import CHANNEL_LABELS, PERSON_CHANNELS, PROVIDER_CHANNELS
from bot.paging.policy import PagingPolicy
from bot.paging.snapshot import (
    BUILTIN_POLICY,
    BUILTIN_POLICY_NAME,
    Contact,
    Snapshot,
    StepSpec,
    Target,
    contact_in,
    looks_like_slack_user,
    policy_for,
    split_members,
    take_snapshot,
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
