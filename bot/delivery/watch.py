"""Upload a workflow's 7-day chart to the channel `/ai-incident watch <workflow> chart` came from."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.delivery.worker import Attempt
from bot.domain.watch.figures import HourPoint
from bot.integrations.ports import ChatNotifier
from bot.rendering.charts import watch_chart
from storage.db import readonly

__all__ = ["WatchChartDelivery", "WeekOfRuns"]

log = logging.getLogger(__name__)


class WeekOfRuns(Protocol):
    """What delivery asks of the watch use case: a workflow's hours over the last 7 days."""

    def week(self, session: Session, workflow: str) -> Sequence[HourPoint]: ...


class WatchChartDelivery:
    """Outbox handler of `chat.watch_chart` rows; the chart is drawn from the figures at delivery."""

    def __init__(
        self,
        *,
        engine: Engine,
        chat: ChatNotifier,
        weeks: WeekOfRuns,
        zone: ZoneInfo,
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._chat = chat
        self._weeks = weeks
        self._zone = zone
        self._clock = clock

    def post(self, attempt: Attempt) -> dict[str, Any]:
        """Draw the chart and upload it to the channel; a week without runs uploads nothing."""
        workflow = str(attempt.payload["workflow"])
        channel = str(attempt.payload["channel"])
        with Session(readonly(self._engine)) as session:
            points = list(self._weeks.week(session, workflow))
        png = watch_chart(points, workflow, self._zone)
        if png is None:
            log.info("no runs of %s in the last 7 days: no chart uploaded", workflow)
            return {"skipped": "no runs in the last 7 days"}
        day = self._clock().astimezone(self._zone).date().isoformat()
        file_id = self._chat.upload(
            channel=channel,
            filename=f"watch-{_file_safe(workflow)}-{day}.png",
            content=png,
            title=f"{workflow}: runs, error rate and spend, last 7 days",
        )
        return {"file": file_id, "workflow": workflow}


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80] or "workflow"
