"""The composition root: settings, storage, adapters, services, workers and the ASGI app."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from apscheduler.schedulers.background import BackgroundScheduler
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from sqlalchemy.engine import Engine

from bot.config import Policy, load_policy
from bot.delivery.callbacks import CallbackDelivery, callback_secret
from bot.delivery.chat import ChatDelivery
from bot.delivery.handoff_chat import HandoffChatDelivery
from bot.delivery.worker import DeliveryWorker, Handler
from bot.domain.redaction import Redactor, SafeText
from bot.integrations.callback_http import HttpCallbacks
from bot.integrations.console_chat import ConsoleChat
from bot.integrations.console_handoffs import ConsoleHandoffChat
from bot.integrations.slack_chat import SlackChat
from bot.integrations.slack_groups import SlackGroups
from bot.metrics import Metrics
from bot.scheduler import Job, build_scheduler
from bot.services import handoffs as handoff_kinds
from bot.services import journal
from bot.services.commands import CommandRunner
from bot.services.handoff_runner import HandoffRunner
from bot.services.handoffs import HandoffService
from bot.services.incidents import IncidentService
from bot.services.ingest import IngestPipeline
from bot.services.killswitch import KillSwitchService
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
    worker: DeliveryWorker  # the chat lane: cards and journal lines
    scheduler: BackgroundScheduler
    jobs: list[Job]
    webhook_token: str | None
    clock: Callable[[], datetime]
    commands: CommandRunner
    killswitch: KillSwitchService
    slack_app: App | None = None
    socket_mode: SocketModeHandler | None = None
    # further delivery lanes (tickets, pages, callbacks), each on its own thread
    lanes: list[DeliveryWorker] = field(default_factory=list)
    handoffs: HandoffRunner | None = None

    @property
    def workers(self) -> list[DeliveryWorker]:
        """Every delivery lane, chat first."""
        return [self.worker, *self.lanes]

    def poke(self) -> None:
        """Wake every delivery lane: new outbox rows were committed."""
        for worker in self.workers:
            worker.poke()

    def deliver_due(self) -> int:
        """Deliver everything due now on every lane, in this thread (tests and tools)."""
        return sum(worker.run_once() for worker in self.workers)

    def start(self) -> None:
        """Start the writer, the delivery lanes and the scheduler."""
        self.pipeline.start()
        for worker in self.workers:
            worker.start()
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
        for worker in self.workers:
            worker.stop()


def _slack_client(settings: Settings) -> WebClient | None:
    if settings.local_mode or settings.slack_bot_token is None:
        return None
    return WebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=10,
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
    killswitch = KillSwitchService(policy=policy, clock=clock)
    incidents.subscribe(killswitch.on_incident_event)
    client = _slack_client(settings)
    # one Slack adapter for every chat handler, so its per-channel pacing sees all their posts
    slack_chat = SlackChat(client) if client is not None else None
    chat = ChatDelivery(
        engine=engine,
        chat=slack_chat or ConsoleChat(console),
        safe=safe,
        default_channel=policy.default_channel,
        slack=not settings.local_mode,
        clock=clock,
        paused=killswitch.is_paused,
    )
    handlers: dict[str, Handler] = {journal.CARD: chat.card, journal.JOURNAL: chat.journal}
    # handoffs (§8): review cards and their threads ride the chat lane
    handoff_service = HandoffService(policy=policy, clock=clock, killswitch=killswitch)
    handoff_chat = HandoffChatDelivery(
        engine=engine,
        chat=slack_chat or ConsoleHandoffChat(console),
        safe=safe,
        channel=handoff_service.review_channel,
        slack=not settings.local_mode,
        clock=clock,
        workflow_known=handoff_service.workflow_known,
    )
    handlers[handoff_kinds.CARD] = handoff_chat.card
    handlers[handoff_kinds.THREAD] = handoff_chat.thread
    worker = DeliveryWorker(
        engine=engine, handlers=handlers, clock=clock, kinds=list(handlers), name="delivery-chat"
    )
    lanes: list[DeliveryWorker] = []

    def poke() -> None:
        for lane in (worker, *lanes):
            lane.poke()

    pipeline = IngestPipeline(engine=engine, service=incidents, metrics=metrics, on_commit=poke)
    jobs: list[Job] = [incidents.review_due, incidents.escalate_due]
    jobs += [handoff_service.expire_leases, handoff_service.sla_due]
    scheduler = build_scheduler(engine, jobs, poke, scheduler_interval_s)
    token = (
        settings.ai_incident_webhook_token.get_secret_value()
        if settings.ai_incident_webhook_token
        else None
    )
    if token is None and settings.local_mode:
        token = LOCAL_DEV_TOKEN
    # decisions go back to agents on a lane of their own: an agent that is down holds up no card
    callbacks = CallbackDelivery(
        engine=engine,
        sender=HttpCallbacks(),
        secret_for=lambda source: callback_secret(policy, source, token),
        clock=clock,
    )
    lanes.append(
        DeliveryWorker(
            engine=engine,
            handlers={handoff_kinds.CALLBACK: callbacks.deliver},
            clock=clock,
            kinds=[handoff_kinds.CALLBACK],
            name="delivery-callbacks",
        )
    )
    handoff_runner = HandoffRunner(
        engine=engine,
        service=handoff_service,
        safe=safe,
        after_commit=poke,
        group_members=SlackGroups(client).members if client is not None else None,
    )
    commands = CommandRunner(
        engine=engine,
        policy=policy,
        incidents=incidents,
        safe=safe,
        after_commit=poke,
        group_members=SlackGroups(client).members if client is not None else None,
        killswitch=killswitch,
        handoffs=handoff_runner,
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
            handoffs=handoff_runner,
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
        killswitch=killswitch,
        slack_app=slack_app if settings.slack_signing_secret is not None else None,
        socket_mode=socket_mode,
        lanes=lanes,
        handoffs=handoff_runner,
    )
