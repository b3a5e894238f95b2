"""`/ai-incident oncall`, `oncall override` and `page`: the answers, over the paging service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.config import Policy
from bot.domain import commands as cmd
from bot.paging.escalation import Contact, looks_like_slack_user
from bot.paging.oncall import to_instant
from bot.paging.service import OnCallAnswer, PagingService
from storage.db import readonly, session_scope

__all__ = ["PagingCommands"]


def _who(contact: Contact | None) -> str:
    if contact is None:
        return "nobody"
    if contact.slack_id:
        return f"<@{contact.slack_id}>"
    return contact.label


def _when(at: datetime, timezone: str) -> str:
    return f"{at.astimezone(ZoneInfo(timezone)):%a %d %b %H:%M %Z}"


class PagingCommands:
    """Runs the paging subcommands; the caller turns DomainError into the answer."""

    def __init__(
        self,
        *,
        engine: Engine,
        policy: Policy,
        paging: PagingService,
        clock: Callable[[], datetime],
        after_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._engine = engine
        self._policy = policy
        self._paging = paging
        self._clock = clock
        self._after_commit = after_commit

    def oncall(self) -> str:
        """Who is on call now and next, per schedule."""
        if not self._policy.schedules:
            return "No on-call schedules are defined (`schedules:` in the policy file)."
        with Session(readonly(self._engine)) as session:
            answers = self._paging.who_is_on_call(session)
        return "On call now:\n" + "\n".join(self._line(a) for a in answers)

    @staticmethod
    def _line(a: OnCallAnswer) -> str:
        head = f"• {a.schedule}: {_who(a.person)}"
        if a.now.until is None:
            return head + (" (no change in the next 90 days)" if a.person else "")
        return f"{head} until {_when(a.now.until, a.timezone)}, then {_who(a.next_person)}"

    def override(self, command: cmd.OnCallOverride, *, user: str) -> str:
        """Put someone on call for a while, in every schedule or one."""
        person = self._paging.person_key(user_id=command.user_id, user_name=command.user_name)
        now = self._clock()
        zone = ZoneInfo(self._policy.timezone)
        if command.duration is not None:
            start, end = now, now + command.duration
        else:
            assert command.start is not None and command.end is not None
            start, end = (
                t if t.tzinfo is not None else to_instant(t, zone)
                for t in (command.start, command.end)
            )
        with session_scope(self._engine) as session:
            self._paging.add_override(
                session, actor=user, person=person, start=start, end=end, schedule=command.schedule
            )
        contact = self._paging_contact(person)
        where = f"in {command.schedule}" if command.schedule else "in every schedule"
        return (
            f"{_who(contact)} is on call {where} from {_when(start, self._policy.timezone)} "
            f"until {_when(end, self._policy.timezone)}."
        )

    def _paging_contact(self, person: str) -> Contact:
        p = self._policy.people.get(person)
        if p is None:
            return Contact(
                person=person, slack_id=person if looks_like_slack_user(person) else None
            )
        return Contact(person=person, name=p.name, slack_id=p.slack_id)

    def page(self, command: cmd.Page, *, incident_id: int, user: str) -> str:
        """Page someone, or whoever is on call, for an incident (journalled)."""
        with session_scope(self._engine) as session:
            answer = self._paging.page_by_hand(
                session,
                incident_id=incident_id,
                actor=user,
                user_id=command.user_id,
                user_name=command.user_name,
                oncall=command.oncall,
            )
        self._after_commit()
        return answer
