"""The ASGI application: webhook routes, health, readiness and metrics.

(No postponed annotations: the routes' dependencies are read off their annotations.)
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Protocol

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from slack_bolt import App
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from bot.config import Policy
from bot.handoffs.runner import HandoffRunner
from bot.integrations.callback_targets import CallbackGuard
from bot.metrics import Metrics
from bot.services.incidents import IncidentService
from bot.services.ingest import IngestPipeline
from bot.services.killswitch import KillSwitchService
from bot.services.tickets import TicketEvents
from bot.services.watch import WatchService
from bot.services.watch_intake import RunIntake
from bot.services.watch_metrics import MetricIntake
from bot.settings import Settings
from handlers.errors import install as install_errors
from handlers.gate import Gate
from handlers.handoffs import HandoffDeps, build_handoff_router
from handlers.jira_webhook import build_jira_router
from handlers.ofrep import OfrepDeps, build_ofrep_router
from handlers.openapi import install as install_openapi
from handlers.otlp import OtlpDeps, build_otlp_router
from handlers.runs import RunsDeps, build_runs_router
from handlers.slack.app import dispatch
from handlers.webhooks import WebhookDeps, WebhookMetrics, build_router
from storage.db import StorageUnavailable, migration_status, readonly

__all__ = ["SLACK_THREADS", "Served", "create_app"]

log = logging.getLogger(__name__)

# Slack's requests are dispatched on threads of their own (see `dispatch`)
SLACK_THREADS = 8


class Lane(Protocol):
    """A delivery lane, as far as /metrics looks at it."""

    def pending_count(self) -> int: ...


class Served(Protocol):
    """What the ASGI app needs of a bot process (the composition root's container has it)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def policy(self) -> Policy: ...
    @property
    def engine(self) -> Engine: ...
    @property
    def metrics(self) -> Metrics: ...
    @property
    def incidents(self) -> IncidentService: ...
    @property
    def pipeline(self) -> IngestPipeline: ...
    @property
    def metric_intake(self) -> MetricIntake: ...
    @property
    def killswitch(self) -> KillSwitchService: ...
    @property
    def ticket_events(self) -> TicketEvents: ...
    @property
    def callback_guard(self) -> CallbackGuard: ...
    @property
    def webhook_token(self) -> str | None: ...
    @property
    def runs(self) -> RunIntake: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...
    @property
    def handoffs(self) -> HandoffRunner | None: ...
    @property
    def slack_app(self) -> App | None: ...
    @property
    def workers(self) -> Sequence[Lane]: ...
    @property
    def watch(self) -> WatchService: ...

    def start(self) -> None: ...
    def stop(self) -> None: ...


def create_app(container: Served, *, manage_lifecycle: bool = True) -> FastAPI:
    """Build the FastAPI app; with `manage_lifecycle` it starts and stops the workers."""
    slack_pool = ThreadPoolExecutor(max_workers=SLACK_THREADS, thread_name_prefix="slack")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            container.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await asyncio.to_thread(container.stop)
            # what Slack sent before the shutdown is acknowledged; nothing new is taken
            await asyncio.to_thread(slack_pool.shutdown, wait=True, cancel_futures=True)

    app = FastAPI(
        title="ai-incident-bot",
        version="0.1.0",
        description="Incident desk in Slack for teams running AI automations.",
        lifespan=lifespan,
    )
    app.state.slack_executor = slack_pool
    install_errors(app)
    app.add_middleware(WebhookMetrics, metrics=container.metrics)
    max_body_bytes = container.settings.max_body_bytes
    app.include_router(
        build_router(
            WebhookDeps(
                policy=container.policy,
                global_token=container.webhook_token,
                pipeline=container.pipeline,
                metrics=container.metrics,
                max_body_bytes=max_body_bytes,
            )
        )
    )
    app.include_router(
        build_runs_router(
            RunsDeps(
                policy=container.policy,
                global_token=container.webhook_token,
                intake=container.runs,
                metrics=container.metrics,
                max_body_bytes=max_body_bytes,
                clock=container.clock,
            )
        )
    )

    app.include_router(
        build_otlp_router(
            OtlpDeps(
                policy=container.policy,
                global_token=container.webhook_token,
                intake=container.metric_intake,
                metrics=container.metrics,
                max_body_bytes=max_body_bytes,
            )
        )
    )
    app.include_router(
        build_ofrep_router(
            OfrepDeps(
                engine=container.engine,
                policy=container.policy,
                killswitch=container.killswitch,
                global_token=container.webhook_token,
                max_body_bytes=max_body_bytes,
            )
        )
    )
    app.include_router(
        build_jira_router(
            events=container.ticket_events,
            secret=container.policy.jira.webhook_secret,
            max_body_bytes=max_body_bytes,
        )
    )

    if container.handoffs is not None:
        app.include_router(
            build_handoff_router(
                HandoffDeps(
                    policy=container.policy,
                    global_token=container.webhook_token,
                    runner=container.handoffs,
                    metrics=container.metrics,
                    max_body_bytes=max_body_bytes,
                    callback_guard=container.callback_guard,
                )
            )
        )

    if container.slack_app is not None and container.settings.slack_signing_secret is not None:
        bolt = container.slack_app
        verified = Gate(max_body_bytes=max_body_bytes).slack(
            container.settings.slack_signing_secret.get_secret_value()
        )

        @app.post("/slack/events", include_in_schema=False)
        async def slack_events(
            request: Request, body: Annotated[bytes, Depends(verified)]
        ) -> Response:
            """Slack events, slash commands and interactivity (HTTP mode)."""
            return await dispatch(bolt, request, body, executor=slack_pool)

    install_openapi(app)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Answer while the process is alive."""
        return {"status": "ok"}

    def _ready() -> tuple[bool, str]:
        try:
            current, head = migration_status(readonly(container.engine))
        except SQLAlchemyError as exc:
            return False, f"database unreachable: {type(exc).__name__}"
        if current != head:
            return False, f"database at migration {current}, code expects {head}"
        return True, f"database reachable, migration {head}"

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        """Answer 200 when the database is reachable and migrated, else 503."""
        ok, detail = await asyncio.to_thread(_ready)
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "detail": detail}, 200 if ok else 503
        )

    def _gauges() -> None:
        try:
            container.metrics.outbox_pending.set(
                sum(worker.pending_count() for worker in container.workers)
            )
            with Session(readonly(container.engine)) as session:
                container.metrics.open_incidents.set(container.incidents.count_open(session))
                container.metrics.workflows.update(container.watch.figures(session))
        except (SQLAlchemyError, StorageUnavailable) as exc:
            # metrics must answer even when the database does not
            log.warning("metrics gauges not refreshed: %s", exc)

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    async def metrics() -> Response:
        """Expose Prometheus metrics."""
        await asyncio.to_thread(_gauges)
        return Response(
            container.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    return app
