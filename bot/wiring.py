"""The composition root: settings, storage, adapters, services, workers and the ASGI app."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from apscheduler.schedulers.background import BackgroundScheduler
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from sqlalchemy.engine import Engine

from bot.config import Policy, load_policy
from bot.delivery.chat import ChatDelivery
from bot.delivery.tickets import TicketDelivery
from bot.delivery.worker import DeliveryWorker, Handler
from bot.domain.redaction import Redactor, SafeText
from bot.integrations.console_chat import ConsoleChat
from bot.integrations.console_tracker import LOCAL_PROJECT, ConsoleTracker
from bot.integrations.jira_tracker import JiraTracker
from bot.integrations.ports import TicketTracker
from bot.integrations.slack_chat import SlackChat
from bot.integrations.slack_groups import SlackGroups
from bot.metrics import Metrics
from bot.scheduler import Job, build_scheduler
from bot.services import journal
from bot.services.commands import CommandRunner
from bot.services.incidents import IncidentService
from bot.services.ingest import IngestPipeline
from bot.services.tickets import TICKET_CREATE, TICKET_UPDATE, TicketEvents, TicketListener
from bot.settings import Settings, environment
from storage.db import create_db_engine

__all__ = ["LOCAL_DEV_TOKEN", "Container", "bootstrap", "utc_now"]

log = logging.getLogger(__name__)

LOCAL_DEV_TOKEN = "local-dev-token"


def utc_now() -> datetime:
    """Return the current instant in UTC."""
    return datetime.now(UTC)


@dataclass
class Container:
    """Everything one bot process is made of."""

    settings: Settings
    policy: Policy
    engine: Engine
    metrics: Metrics
    safe: SafeText
    incidents: IncidentService
    pipeline: IngestPipeline
    worker: DeliveryWorker
    scheduler: BackgroundScheduler
    jobs: list[Job]
    webhook_token: str | None
    clock: Callable[[], datetime]
    commands: CommandRunner
    ticket_events: TicketEvents
    slack_app: App | None = None
    socket_mode: SocketModeHandler | None = None

    def start(self) -> None:
        """Start the writer, the delivery worker and the scheduler."""
        self.pipeline.start()
        self.worker.start()
        self.scheduler.start()
        if self.socket_mode is not None:
            self.socket_mode.connect()  # type: ignore[no-untyped-call]

    def stop(self) -> None:
        """Stop them, letting queued ingest finish."""
        if self.socket_mode is not None:
            self.socket_mode.close()  # type: ignore[no-untyped-call]
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.pipeline.stop()
        self.worker.stop()


def _slack_client(settings: Settings) -> WebClient | None:
    if settings.local_mode or settings.slack_bot_token is None:
        return None
    return WebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=10,
    )


def _tracker(settings: Settings, policy: Policy, console: TextIO | None) -> TicketTracker:
    if not settings.jira_configured or settings.jira_url is None:
        return ConsoleTracker(console)
    assert settings.jira_api_token is not None
    return JiraTracker(
        url=settings.jira_url,
        user=settings.jira_user or None,
        token=settings.jira_api_token.get_secret_value(),
        timeout=policy.jira.timeout.total_seconds(),
    )


def bootstrap(
    settings: Settings | None = None,
    *,
    policy: Policy | None = None,
    clock: Callable[[], datetime] = utc_now,
    console: TextIO | None = None,
    engine: Engine | None = None,
    scheduler_interval_s: float = 15.0,
) -> Container:
    """Build a container from settings (read from the environment when not given)."""
    settings = settings or Settings()
    policy = policy or load_policy(settings.ai_incident_config, environment())
    engine = engine or create_db_engine(settings.database_url)
    metrics = Metrics()
    safe = SafeText(Redactor(policy.redaction))
    incidents = IncidentService(policy=policy, clock=clock)
    client = _slack_client(settings)
    notifier = SlackChat(client) if client is not None else ConsoleChat(console)
    tickets = TicketDelivery(
        engine=engine,
        tracker=_tracker(settings, policy, console),
        chat=notifier,
        safe=safe,
        policy=policy,
        default_project=settings.jira_project
        or (None if settings.jira_configured else LOCAL_PROJECT),
        clock=clock,
    )
    if policy.jira.enabled:
        incidents.subscribe(TicketListener(policy))
    chat = ChatDelivery(
        engine=engine,
        chat=notifier,
        safe=safe,
        default_channel=policy.default_channel,
        slack=not settings.local_mode,
        clock=clock,
        tickets=policy.jira.enabled,
        on_first_post=tickets.card_posted,
    )
    handlers: dict[str, Handler] = {
        journal.CARD: chat.card,
        journal.JOURNAL: chat.journal,
        TICKET_CREATE: tickets.create,
        TICKET_UPDATE: tickets.update,
    }
    # Jira gets a thread of its own: a Jira that times out must not hold Slack posts back
    worker = DeliveryWorker(
        engine=engine, handlers=handlers, clock=clock, lanes=[(TICKET_CREATE, TICKET_UPDATE)]
    )
    pipeline = IngestPipeline(
        engine=engine, service=incidents, metrics=metrics, on_commit=worker.poke
    )
    jobs: list[Job] = [incidents.review_due, incidents.escalate_due]
    scheduler = build_scheduler(engine, jobs, worker.poke, scheduler_interval_s)
    token = (
        settings.ai_incident_webhook_token.get_secret_value()
        if settings.ai_incident_webhook_token
        else None
    )
    if token is None and settings.local_mode:
        token = LOCAL_DEV_TOKEN
    commands = CommandRunner(
        engine=engine,
        policy=policy,
        incidents=incidents,
        safe=safe,
        after_commit=worker.poke,
        group_members=SlackGroups(client).members if client is not None else None,
    )
    slack_app = None
    socket_mode = None
    app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else None
    if client is not None and (settings.slack_signing_secret is not None or app_token):
        from handlers.slack.app import build_bolt_app

        slack_app = build_bolt_app(
            client=client,
            signing_secret=(
                settings.slack_signing_secret.get_secret_value()
                if settings.slack_signing_secret is not None
                else None
            ),
            commands=commands,
        )
        if app_token:
            # Socket Mode: Slack's traffic comes over a websocket the bot opens; /slack/events
            # still answers if a signing secret is set
            socket_mode = SocketModeHandler(slack_app, app_token, web_client=client)
    return Container(
        settings=settings,
        policy=policy,
        engine=engine,
        metrics=metrics,
        safe=safe,
        incidents=incidents,
        pipeline=pipeline,
        worker=worker,
        scheduler=scheduler,
        jobs=jobs,
        webhook_token=token,
        clock=clock,
        commands=commands,
        ticket_events=TicketEvents(
            engine=engine, policy=policy, incidents=incidents, clock=clock, after_commit=worker.poke
        ),
        slack_app=slack_app if settings.slack_signing_secret is not None else None,
        socket_mode=socket_mode,
    )
