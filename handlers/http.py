"""The ASGI application: webhook routes, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlmodel import Session

from bot.wiring import Container
from handlers.handoffs import HandoffDeps, build_handoff_router
from handlers.jira_webhook import build_jira_router
from handlers.ofrep import OfrepDeps, build_ofrep_router
from handlers.openapi import install as install_openapi
from handlers.slack.app import dispatch
from handlers.webhooks import WebhookDeps, build_router
from storage.db import migration_status, readonly

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(container: Container, *, manage_lifecycle: bool = True) -> FastAPI:
    """Build the FastAPI app; with `manage_lifecycle` it starts and stops the workers."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            container.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await asyncio.to_thread(container.stop)

    app = FastAPI(
        title="ai-incident-bot",
        version="0.1.0",
        description="Incident desk in Slack for teams running AI automations.",
        lifespan=lifespan,
    )
    app.include_router(
        build_router(
            WebhookDeps(
                policy=container.policy,
                global_token=container.webhook_token,
                pipeline=container.pipeline,
                metrics=container.metrics,
                max_body_bytes=container.settings.max_body_bytes,
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
                max_body_bytes=container.settings.max_body_bytes,
            )
        )
    )
    app.include_router(
        build_jira_router(
            events=container.ticket_events,
            secret=container.policy.jira.webhook_secret,
            max_body_bytes=container.settings.max_body_bytes,
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
                    max_body_bytes=container.settings.max_body_bytes,
                    callback_guard=container.callback_guard,
                )
            )
        )

    if container.slack_app is not None and container.settings.slack_signing_secret is not None:
        bolt = container.slack_app
        signing_secret = container.settings.slack_signing_secret.get_secret_value()

        @app.post("/slack/events", include_in_schema=False)
        async def slack_events(request: Request) -> Response:
            """Slack events, slash commands and interactivity (HTTP mode)."""
            return await dispatch(
                bolt,
                request,
                signing_secret=signing_secret,
                max_body_bytes=container.settings.max_body_bytes,
            )

    install_openapi(app)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Answer while the process is alive."""
        return {"status": "ok"}

    def _ready() -> tuple[bool, str]:
        try:
            current, head = migration_status(readonly(container.engine))
        except Exception as exc:
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
        except Exception as exc:
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
