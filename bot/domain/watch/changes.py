"""A workflow's change log: the models and prompt versions it began to run with, in order.

The history keeps, per workflow and value, when it was first and last seen and which input
(runs, OTLP, an alert's AI context) first reported it. A change is a value's *first*
appearance: a workflow that goes from A to B and back to A has one change (A → B); the return
to A is not a change, since A is not new. A later value C's `before` is the value of its kind
seen most recently before C first appeared (A, if A was still being seen then).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.domain.watch.history import Change, ChangeSource, VersionKind

__all__ = [
    "CHANGE_KINDS",
    "CHANGE_WINDOW",
    "Sighting",
    "before",
    "began_after",
    "derive",
    "journal_text",
    "within",
]

# the kinds of value whose first appearance is a change (an error text is not)
CHANGE_KINDS: tuple[VersionKind, ...] = (VersionKind.MODEL, VersionKind.PROMPT)
# how far before an incident its changes are listed
CHANGE_WINDOW = timedelta(hours=24)

_SOURCE_WORDS = {
    ChangeSource.RUNS: "runs",
    ChangeSource.OTLP: "OTLP metrics",
    ChangeSource.ALERT: "an alert's AI context",
}


@dataclass(frozen=True, slots=True)
class Sighting:
    """A value a workflow was seen with: first and last seen, and who reported it first."""

    workflow: str
    kind: VersionKind
    value: str
    first_seen: datetime
    last_seen: datetime
    source: ChangeSource


def derive(sightings: Iterable[Sighting]) -> list[Change]:
    """Return the changes the sightings of models and prompt versions make, oldest first.

    Per workflow and kind, in order of first seen (ties by value), each value is a change; its
    `before` is the value of that kind whose latest sighting before it is the latest (a value
    still seen when it appeared counts as seen at that moment; ties go to the value that
    appeared later). The first value of a kind has no `before`.
    """
    groups: dict[tuple[str, VersionKind], list[Sighting]] = {}
    for sighting in sightings:
        if sighting.kind in CHANGE_KINDS:
            groups.setdefault((sighting.workflow, sighting.kind), []).append(sighting)
    changes: list[Change] = []
    for (workflow, kind), found in groups.items():
        found.sort(key=lambda s: (s.first_seen, s.value))
        for index, sighting in enumerate(found):
            at = sighting.first_seen
            previous = max(
                found[:index],
                key=lambda s: (min(s.last_seen, at), s.first_seen, s.value),
                default=None,
            )
            changes.append(
                Change(
                    workflow=workflow,
                    kind=kind,
                    before=previous.value if previous is not None else None,
                    after=sighting.value,
                    at=at,
                    source=sighting.source,
                )
            )
    changes.sort(key=lambda c: (c.at, c.workflow, c.kind.value, c.after))
    return changes


def within(
    changes: Iterable[Change], *, since: datetime | None = None, until: datetime | None = None
) -> list[Change]:
    """Return the changes with `since` <= at < `until` (either bound left out: no bound)."""
    return [
        c for c in changes if (since is None or c.at >= since) and (until is None or c.at < until)
    ]


def before(
    changes: Sequence[Change], at: datetime, span: timedelta = CHANGE_WINDOW
) -> list[Change]:
    """Return the changes in the `span` before `at` (and at `at` itself), oldest first."""
    return [c for c in changes if at - span <= c.at <= at]


def journal_text(change: Change, zone: ZoneInfo, now: datetime) -> str:
    """Say a change as a journal entry, e.g.
    "Model changed: gpt-4o-2024-08-06 → gpt-4o-2024-11-20 (seen in runs at 14:02 UTC)".

    The time is in the team's zone, with the date when it is not `now`'s day.
    """
    local = change.at.astimezone(zone)
    when = local.strftime("%H:%M %Z")
    if local.date() != now.astimezone(zone).date():
        when = local.strftime("%d %b %H:%M %Z")
    what = "Model" if change.kind is VersionKind.MODEL else "Prompt version"
    seen = f"(seen in {_SOURCE_WORDS[change.source]} at {when})"
    if change.before is None:
        return f"{what} first seen: {change.after} {seen}"
    return f"{what} changed: {change.before} → {change.after} {seen}"


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def began_after(
    changes: Sequence[Change], began: datetime, span: timedelta = CHANGE_WINDOW
) -> str | None:
    """Say which change a condition that began at `began` followed, within `span`, e.g.
    "began 40 min after prompt summary-v12 → summary-v13"; None when no change came before.

    The latest change at or before `began` is named (more of them: "and 2 other changes").
    """
    found = before(changes, began, span)
    if not found:
        return None
    latest = max(found, key=lambda c: c.at)
    text = f"began {_span(began - latest.at)} after {latest.describe()}"
    others = len(found) - 1
    if others:
        text += (
            f" (and {others} other change{'s' if others != 1 else ''} in the {_span(span)} before)"
        )
    return text
