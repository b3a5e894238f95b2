"""The watched severity rules at work: judge each workflow's history, open and resolve incidents.

Every 30 s (by default) the scheduler reads what the rules need for every watched workflow in a
few queries — the minutes of the last few hours, the hours of the last nine days, the latest
latencies, each workflow's first hour and latest run, the changes of the last day — and hands
it to the pure rules (`bot.domain.watch.rules`). A rule that holds goes through the ordinary alert
path as an alert of source `watch`: one group per workflow (so a workflow's rules share an
incident, whose severity is the worst of them) and one alert per rule. A rule that has been
clear for the hold-down time resolves its alert; the incident then resolves with its last alert,
or only journals it when the workflow says `resolve_on_source_resolve: false`.

Nothing is kept in memory between ticks: how long a condition has held comes from the history,
and whether its alert is firing from the database, so a restart changes nothing and two replicas
evaluating at once open one incident (the alert group's key decides the race).
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlmodel import Session

from bot.config import Policy
from bot.domain.alerts import AlertIn, AlertStatus, Notification
from bot.domain.severity import Evidence, Reason
from bot.domain.watch.history import Change, Tally, hour_of, minute_of
from bot.domain.watch.rules import (
    Finding,
    Holding,
    WatchedHistory,
    evaluate,
    hours_needed,
    minutes_needed,
)
from storage import watch as store
from storage.models import AlertRow, IncidentRow

if TYPE_CHECKING:
    from bot.services.incidents import IncidentService
    from bot.services.killswitch import KillSwitchService

__all__ = [
    "WATCH_SOURCE",
    "SlowReads",
    "WatchEvaluator",
    "WatchJudge",
    "read_histories",
    "rule_fingerprint",
    "stored_changes",
]

WATCH_SOURCE = "watch"

# what the rules read by default: minutes of the last hours (windows, streaks, the hold-down),
# hours of the last days (baselines over the previous 7 days, spend over 24 h and today); the
# judge reads as far back as the workflows' thresholds ask (`minutes_needed`, `hours_needed`)
MINUTES_BACK = timedelta(hours=3)
HOURS_BACK = timedelta(days=9)
CHANGES_BACK = timedelta(hours=26)
# how far back a quiet workflow's latest latencies are looked for (the default retention)
RECENT_BACK = timedelta(days=2)


def rule_fingerprint(workflow: str, rule: str) -> str:
    """Return the alert fingerprint of one rule of one workflow (its dedup key)."""
    return f"watch:{workflow}:{rule}"


def _group_key(workflow: str) -> str:
    return f"watch:{workflow}"


class SlowReads:
    """What changes slowly, read once and then a slice a tick instead of whole on every tick:
    the hours of the last days (the two latest are read on every tick, each older day again in
    turn, one day a tick, so a run backdated into them reaches the baselines within as many
    ticks as there are days), and each workflow's first hour and latest run (the hour table's
    whole length, read again once a turn). A cache of the database only: nothing in it is
    needed to carry on after a restart."""

    def __init__(self) -> None:
        self._filled = False
        self._turn = 0
        self._workflows: frozenset[str] = frozenset()
        self._hours: dict[str, dict[int, Tally]] = {}
        self._reach: dict[str, tuple[int, int | None]] = {}
        # the scheduler's tick and the watch commands' threads share one judge
        self._lock = threading.Lock()

    def read(
        self,
        session: Session,
        workflows: Collection[str],
        now: datetime,
        back: timedelta = HOURS_BACK,
    ) -> tuple[dict[str, dict[int, Tally]], dict[str, tuple[int, int | None]]]:
        """Return the hours of the last `back` and the reach of `workflows` at `now` (copies:
        the caller may read them while another thread refreshes the cache)."""
        with self._lock:
            hours, reach = self._read(session, workflows, now, back)
            return {w: dict(kept) for w, kept in hours.items()}, dict(reach)

    def _read(
        self, session: Session, workflows: Collection[str], now: datetime, back: timedelta
    ) -> tuple[dict[str, dict[int, Tally]], dict[str, tuple[int, int | None]]]:
        until = minute_of(now) + 1
        since = hour_of(minute_of(now - back))
        latest = hour_of(minute_of(now)) - 60
        spans = [(latest, until)]
        if not self._filled or not self._workflows.issuperset(workflows):
            self._hours = defaultdict(dict)
            self._workflows = frozenset(workflows)
            self._filled, self._turn = True, 0
            self._reach = store.reach(session, workflows)
            spans = [(since, until)]
        else:
            days = max(math.ceil((latest - since) / 1440), 1)
            day = self._turn % days
            self._turn += 1
            if day == 0:
                self._reach = store.reach(session, workflows)
            start = since + day * 1440
            if start < latest:
                spans.append((start, min(start + 1440, latest)))
        for first, last in spans:
            for slot in store.slots(
                session, since=first, until=last, hourly=True, workflows=workflows
            ):
                self._hours.setdefault(slot.workflow, {})[slot.start] = slot.tally
        for kept in self._hours.values():
            for hour in [h for h in kept if h < since]:
                del kept[hour]
        return self._hours, self._reach


def read_histories(
    session: Session,
    workflows: Collection[str],
    *,
    now: datetime,
    changes: Callable[[Session, Collection[str], datetime], Sequence[Change]] | None = None,
    latest: int = 5,
    slow: SlowReads | None = None,
    minutes_back: timedelta = MINUTES_BACK,
    hours_back: timedelta = HOURS_BACK,
) -> dict[str, WatchedHistory]:
    """Read what the rules need for `workflows` at `now`, in a handful of queries for all
    (`latest`: how many of each workflow's latest latencies; `slow`: a cache of what changes
    slowly, else it is read now)."""
    if not workflows:
        return {}
    until = minute_of(now) + 1
    minutes: dict[str, dict[int, Tally]] = defaultdict(dict)
    # counts only: the minute rules add up runs, failures, refusals, tokens and cost
    for slot in store.minute_counts(
        session, since=minute_of(now - minutes_back), until=until, workflows=workflows
    ):
        minutes[slot.workflow][slot.start] = slot.tally
    hours, reach = (slow or SlowReads()).read(session, workflows, now, hours_back)
    # the latest latencies: from the minutes just read where a workflow has enough of them
    # there, else from the days the minutes keep them for (a quiet workflow's last runs)
    recent = store.recent_latencies(
        session,
        since=minute_of(now - minutes_back),
        until=until,
        count=latest,
        workflows=workflows,
    )
    short = [w for w in workflows if len(recent.get(w, ())) < latest]
    if short:
        recent.update(
            store.recent_latencies(
                session,
                since=minute_of(now - RECENT_BACK),
                until=until,
                count=latest,
                workflows=short,
            )
        )
    changed: dict[str, list[Change]] = defaultdict(list)
    if changes is not None:
        for change in changes(session, workflows, now - CHANGES_BACK):
            changed[change.workflow].append(change)
    found = {}
    for workflow in workflows:
        mine = minutes.get(workflow, {})
        first, last = reach.get(workflow, (None, None))
        # the latest run: the minutes read now know better than the cached reach
        seen = [t.last_at_ms for t in mine.values() if t.last_at_ms is not None]
        seen += [t.last_at_ms for t in hours.get(workflow, {}).values() if t.last_at_ms]
        if last is not None:
            seen.append(last)
        earliest = [m for m in (first, *mine, *hours.get(workflow, {})) if m is not None]
        found[workflow] = WatchedHistory(
            workflow=workflow,
            minutes=mine,
            hours=hours.get(workflow, {}),
            recent=recent.get(workflow, []),
            first_minute=hour_of(min(earliest)) if earliest else None,
            last_run_ms=max(seen) if seen else None,
            changes=changed.get(workflow, []),
        )
    return found


@dataclass(frozen=True)
class _Open:
    """A watch alert of an open incident."""

    incident_id: int
    firing: bool


def _open_alerts(session: Session) -> dict[str, _Open]:
    query = (
        sa.select(AlertRow.fingerprint, AlertRow.incident_id, AlertRow.status)  # type: ignore[call-overload]
        .join(IncidentRow, IncidentRow.id == AlertRow.incident_id)
        .where(
            IncidentRow.source == WATCH_SOURCE,
            IncidentRow.resolved_at.is_(None),  # type: ignore[union-attr]
        )
    )
    return {
        fingerprint: _Open(incident_id, status == AlertStatus.FIRING.value)
        for fingerprint, incident_id, status in session.execute(query)
    }


def stored_changes(session: Session, workflows: Collection[str], since: datetime) -> list[Change]:
    """Return the workflows' changes of model or prompt version since `since`, oldest first."""
    return store.changes(session, workflows=workflows, since=since)


class WatchJudge:
    """Judge the watched rules for some workflows at some instant (reads only); a rule that
    began within a day of a change of model or prompt version names it (`changes`: the change
    log, by default the stored one). With `switches`, a workflow paused by its kill switch is
    not silent: its runs are with people."""

    def __init__(
        self,
        *,
        policy: Policy,
        changes: Callable[[Session, Collection[str], datetime], Sequence[Change]] = stored_changes,
        switches: KillSwitchService | None = None,
    ) -> None:
        self._policy = policy
        self._changes = changes
        self._switches = switches
        self._slow = SlowReads()

    def workflows(self, session: Session, now: datetime) -> list[str]:
        """Return the workflows to judge: the policy's and those with history in the minutes kept."""
        since = minute_of(now - self._policy.watch.retention.minutes)
        return sorted({*self._policy.workflows, *store.workflows_seen(session, since)})

    def findings(
        self, session: Session, *, now: datetime, workflows: Collection[str] | None = None
    ) -> list[Finding]:
        """Return every rule's finding for `workflows` (default: all watched) at `now`."""
        names = sorted(workflows) if workflows is not None else self.workflows(session, now)
        thresholds = [self._policy.rules_for(name) for name in names]
        histories = read_histories(
            session,
            names,
            now=now,
            changes=self._changes,
            latest=max((r.latency_runs for r in thresholds), default=3),
            slow=self._slow,
            minutes_back=max(map(minutes_needed, thresholds), default=MINUTES_BACK),
            hours_back=max(map(hours_needed, thresholds), default=HOURS_BACK),
        )
        # a workflow its kill switch has handed to people sends no runs: not silence
        paused = (
            {state.workflow for state in self._switches.states(session) if not state.enabled}
            if self._switches is not None
            else set()
        )
        found: list[Finding] = []
        for name in names:
            workflow = self._policy.workflow(name)
            judged = evaluate(
                histories[name],
                self._policy.rules_for(name),
                now=now,
                hours=self._policy.hours,
                customer_facing=workflow.category.value == "customer-facing",
                pinned_cost_per_run=workflow.watch.cost_per_run_usd,
                expect_every=workflow.watch.expect_interval,
                silence_off=workflow.watch.silence_off,
            )
            if name in paused:
                judged = [_paused(f) if f.rule == "silence" else f for f in judged]
            found += judged
        return found


def _paused(finding: Finding) -> Finding:
    return replace(
        finding,
        holding=Holding.OFF,
        text="off: the workflow is paused by its kill switch, so its runs are with people",
        since=None,
        last_held=None,
    )


class WatchEvaluator:
    """The scheduler's job that judges the watched rules and files what they find."""

    def __init__(
        self,
        *,
        judge: WatchJudge,
        policy: Policy,
        clock: Callable[[], datetime],
        incidents: IncidentService,
        every: timedelta = timedelta(seconds=30),
    ) -> None:
        self.judge = judge
        self._policy = policy
        self._clock = clock
        self._incidents = incidents
        self._every = every
        self._last: datetime | None = None

    def findings(
        self, session: Session, *, now: datetime, workflows: Collection[str] | None = None
    ) -> list[Finding]:
        """Return every rule's finding (see WatchJudge.findings)."""
        return self.judge.findings(session, now=now, workflows=workflows)

    def __call__(self, session: Session) -> int:
        """Judge every watched workflow when `every` has passed; return the alerts filed."""
        now = self._clock()
        if self._last is not None and now - self._last < self._every:
            return 0
        self._last = now
        return self.apply(session, self.findings(session, now=now), now=now)

    def apply(self, session: Session, findings: Sequence[Finding], *, now: datetime) -> int:
        """File a firing alert for each rule that holds and is not firing yet; resolve each
        firing one whose rule has been clear for the hold-down time. A workflow's alerts of one
        tick go in one notification, so an incident opens with every reason that holds.
        Return how many alerts were filed."""
        held = _open_alerts(session)
        changed: dict[str, list[tuple[Finding, AlertStatus]]] = defaultdict(list)
        for finding in findings:
            known = held.get(rule_fingerprint(finding.workflow, finding.rule))
            firing = known is not None and known.firing
            if finding.holding is Holding.FIRING:
                if not firing:
                    changed[finding.workflow].append((finding, AlertStatus.FIRING))
            elif firing:
                hold_down = self._policy.rules_for(finding.workflow).hold_down
                if finding.last_held is None or now - finding.last_held >= hold_down:
                    changed[finding.workflow].append((finding, AlertStatus.RESOLVED))
        for workflow, alerts in changed.items():
            self._incidents.ingest(session, _notification(workflow, alerts))
        return sum(len(alerts) for alerts in changed.values())


def _notification(workflow: str, changed: Sequence[tuple[Finding, AlertStatus]]) -> Notification:
    """One workflow's alerts of a tick, the most severe firing one first (it names the group)."""
    ordered = sorted(
        changed, key=lambda pair: (pair[1] is not AlertStatus.FIRING, -pair[0].severity.rank)
    )
    alerts = tuple(
        AlertIn(
            fingerprint=rule_fingerprint(workflow, finding.rule),
            status=status,
            title=finding.title,
            description=finding.text,
            labels={"workflow": workflow, "rule": finding.rule},
            values=dict(finding.figures),
            starts_at=finding.since,
            workflow=workflow,
            evidence=Evidence(
                watched=Reason(f"watch:{finding.rule}", finding.severity, finding.text),
                firing_since=finding.since,
            ),
        )
        for finding, status in ordered
    )
    title = ordered[0][0].title
    return Notification(
        source=WATCH_SOURCE,
        group_key=_group_key(workflow),
        title=title if title.startswith(f"{workflow}:") else f"{workflow}: {title}",
        alerts=alerts,
        workflow=workflow,
    )
