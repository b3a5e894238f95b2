"""Post the weekly digest: the text first, then the chart; a failed chart leaves the text."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.delivery.worker import Attempt
from bot.domain.digest import Digest, Week
from bot.domain.redaction import SafeText
from bot.integrations.ports import ChatNotifier, GiveUp, RetryLater, post_once
from bot.rendering.charts import week_chart
from bot.rendering.reports import digest_text
from storage.db import readonly, session_scope
from storage.models import DigestRunRow

__all__ = ["DigestDelivery"]

log = logging.getLogger(__name__)


class Digests(Protocol):
    """What delivery asks of the digest use case: the week's figures, in the team's zone."""

    zone: ZoneInfo

    def build(self, session: Session, week: Week, *, late: bool = False) -> Digest: ...


class DigestDelivery:
    """Outbox handler of `chat.digest` rows; the figures are computed at delivery time."""

    def __init__(
        self,
        *,
        engine: Engine,
        chat: ChatNotifier,
        digests: Digests,
        safe: SafeText,
        slack: bool,
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._chat = chat
        self._digests = digests
        self._safe = safe
        self._slack = slack
        self._clock = clock

    def post(self, attempt: Attempt) -> dict[str, Any]:
        """Post the digest of the run's week to its channel, once."""
        run_id = int(attempt.payload["run_id"])
        with Session(readonly(self._engine)) as session:
            run = session.get(DigestRunRow, run_id)
            if run is None:
                raise GiveUp(f"digest run {run_id} does not exist")
            week = Week.parse(run.period)
            digest = self._digests.build(session, week, late=run.late)
        esc = self._safe.slack if self._slack else self._safe.plain
        text = digest_text(digest, esc, self._digests.zone, slack=self._slack)
        ts = run.slack_ts
        if ts is None:
            ts = post_once(
                self._chat,
                channel=run.channel,
                text=text,
                key=attempt.idempotency_key,
                uncertain=attempt.uncertain,
                sent=attempt.sent,
            ).ts
        with session_scope(self._engine) as session:
            row = session.get(DigestRunRow, run_id, with_for_update=True)
            assert row is not None
            row.slack_ts = ts
            row.status = "posted"
            row.posted_at = row.posted_at or self._clock()
            session.add(row)
        chart: str | None = run.chart
        if chart is None:
            chart = self._chart(run_id, run.channel, ts, digest)
        return {"ts": ts, "period": run.period, "chart": chart}

    def _chart(self, run_id: int, channel: str, ts: str, digest: Any) -> str | None:
        """Upload the chart in the digest's thread; on failure record why and keep the text."""
        error: str | None = None
        file_id: str | None = None
        try:
            png = week_chart(digest, self._digests.zone)
            if png is None:
                return None
            file_id = self._chat.upload(
                channel=channel,
                filename=f"ai-operations-{digest.week}.png",
                content=png,
                title=f"Incidents and handoffs per day, {digest.week}",
                thread_ts=ts,
            )
        except (RetryLater, GiveUp) as exc:
            # the text is posted and stands on its own; a chart is not worth re-posting for
            error = str(exc)
            log.warning("the digest chart could not be uploaded: %s", exc)
        with session_scope(self._engine) as session:
            row = session.get(DigestRunRow, run_id, with_for_update=True)
            assert row is not None
            row.chart = (file_id or "")[:20] if error is None else None
            row.chart_error = error
            session.add(row)
        return file_id
