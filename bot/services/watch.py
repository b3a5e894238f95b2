"""The watched workflows' figures and weekly chart points, read from the stored history.

A handful of queries answer for every workflow at once: the workflows seen, the totals of the
spans the figures need (added up by the database: whole hours from the hourly history, the
partial hours at the edges of the last two hours and of each local day from the minutes), the
latest latencies (of the last two hours; of the days they are kept for a workflow with fewer
than three there), the models and prompts seen, and each workflow's first hour and latest run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bot.config import Policy
from bot.domain.watch.figures import (
    HourPoint,
    Part,
    Reads,
    RuleState,
    WatchFigures,
    WatchHistory,
    compute_figures,
    reads,
    week_points,
)
from bot.domain.watch.history import Tally, Version, VersionKind, hour_of, minute_of
from bot.domain.watch.rules import Finding
from bot.services.errors import UnknownWorkflow
from storage import watch as store

__all__ = ["UnwatchedWorkflow", "WatchService"]

# the versions the figures show (error texts are not read)
_SHOWN = (VersionKind.MODEL, VersionKind.PROMPT)


class RuleJudge(Protocol):
    """What judges the watched severity rules (bot.services.watch_rules.WatchJudge)."""

    def findings(
        self, session: Session, *, now: datetime, workflows: Collection[str] | None = None
    ) -> list[Finding]: ...


class UnwatchedWorkflow(UnknownWorkflow):
    """Neither the policy file nor the recent history knows a workflow of that name."""

    def __init__(self, workflow: str, known: list[str]) -> None:
        super().__init__(workflow, known)
        names = ", ".join(sorted(known)) or "none"
        self.args = (
            f"No workflow {workflow!r} is in the policy file or has sent runs lately "
            f"(workflows: {names}).",
        )


class WatchService:
    """Figures of the watched workflows at the bot's clock."""

    def __init__(
        self,
        *,
        policy: Policy,
        clock: Callable[[], datetime],
        judge: RuleJudge | None = None,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._zone = ZoneInfo(policy.timezone)
        self._judge = judge

    def workflows(self, session: Session) -> list[str]:
        """Return the policy's workflows and every workflow with history in the minutes kept."""
        keep = self._policy.watch.retention.minutes
        since = minute_of(self._clock() - keep)
        return sorted({*self._policy.workflows, *store.workflows_seen(session, since)})

    def resolve(self, session: Session, workflow: str) -> str:
        """Return the workflow a name or alias means; UnwatchedWorkflow if none."""
        name = self._policy.watched_workflow(workflow)
        known = self.workflows(session)
        if name in known:
            return name
        raise UnwatchedWorkflow(workflow, known)

    def figures(self, session: Session, workflow: str | None = None) -> list[WatchFigures]:
        """Return the figures of every watched workflow (or the named one), sorted by name."""
        names = [self.resolve(session, workflow)] if workflow is not None else None
        if names is None:
            names = self.workflows(session)
        if not names:
            return []
        now = self._clock()
        plan = reads(now, self._zone, minutes_kept=self._policy.watch.retention.minutes)
        only: Collection[str] | None = names if workflow is not None else None
        sums: dict[str, dict[Part, Tally]] = defaultdict(dict)
        for (name, since, until, hourly), tally in store.sums(session, plan.parts, only).items():
            sums[name][Part(since, until, hourly)] = tally
        recent = self._latest_latencies(session, plan, names, only)
        versions: dict[str, list[Version]] = defaultdict(list)
        for version in store.versions(session, only, kinds=_SHOWN):
            versions[version.workflow].append(version)
        reach = store.reach(session, only)
        found = []
        for name in names:
            first, last_ms = reach.get(name, (None, None))
            history = WatchHistory(
                workflow=name,
                sums=sums.get(name, {}),
                recent=recent.get(name, []),
                versions=versions.get(name, []),
                first_minute=first,
                last_at_ms=last_ms,
            )
            found.append(
                compute_figures(
                    history,
                    plan,
                    zone=self._zone,
                    pinned_cost_per_run=self._policy.workflow(name).watch.cost_per_run_usd,
                )
            )
        if self._judge is None:
            return found
        states: dict[str, list[RuleState]] = defaultdict(list)
        for finding in self._judge.findings(session, now=now, workflows=names):
            states[finding.workflow].append(
                RuleState(
                    rule=finding.rule,
                    state=finding.holding.value,
                    severity=finding.severity.value,
                    text=finding.text,
                    since=finding.since,
                )
            )
        return [replace(f, rules=tuple(states.get(f.workflow, ()))) for f in found]

    def _latest_latencies(
        self, session: Session, plan: Reads, names: list[str], only: Collection[str] | None
    ) -> dict[str, list[tuple[int, float]]]:
        """The last three latencies of each workflow: from the last two hours, and for the
        workflows with fewer there, from the rest of the minutes that keep them."""
        found = store.recent_latencies(
            session, since=plan.recent_since, until=plan.recent_until, count=3, workflows=only
        )
        short = [name for name in names if len(found.get(name, ())) < 3]
        if short:
            keep = self._policy.watch.retention.recent_latencies
            older = store.recent_latencies(
                session,
                since=plan.now_minute - int(keep.total_seconds() // 60),
                until=plan.recent_since,
                count=3,
                workflows=short,
            )
            for name, entries in older.items():
                found[name] = (entries + found.get(name, []))[-3:]
        return found

    def week(self, session: Session, workflow: str) -> list[HourPoint]:
        """Return the workflow's last seven days as hourly points, oldest first."""
        name = self.resolve(session, workflow)
        now = self._clock()
        current = hour_of(minute_of(now))
        hours = store.slots(
            session, since=current - 167 * 60, until=current + 60, hourly=True, workflows=[name]
        )
        return week_points(hours, now=now)
