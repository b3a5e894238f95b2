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
from bot.delivery.chat import ChatDelivery
from bot.delivery.digest import DigestDelivery
from bot.delivery.tickets import TicketDelivery
from bot.delivery.worker import DeliveryWorker, Handler
from bot.domain.redaction import Redactor, SafeText
from bot.handoffs import service as handoff_kinds
from bot.handoffs.callback_delivery import CallbackDelivery, callback_secret
from bot.handoffs.chat_delivery import HandoffChatDelivery
from bot.handoffs.paging import HandoffPaging
from bot.handoffs.runner import HandoffRunner
from bot.handoffs.service import HandoffService
from bot.handoffs.tickets import (
    HANDOFF_TICKET_CREATE,
    HANDOFF_TICKET_UPDATE,
    HandoffTicketListener,
)
from bot.integrations.callback_http import HttpCallbacks
from bot.integrations.callback_targets import CallbackGuard, Resolver, SystemResolver
from bot.integrations.console_chat import ConsoleChat
from bot.integrations.console_handoffs import ConsoleHandoffChat
from bot.integrations.console_tracker import LOCAL_PROJECT, ConsoleTracker
from bot.integrations.jira_tracker import JiraTracker
from bot.integrations.ports import TicketTracker
from bot.integrations.slack_chat import SlackChat
from bot.integrations.slack_dm import SlackDirect
from bot.integrations.slack_groups import SlackGroups
from bot.metrics import Metrics
from bot.paging.commands import PagingCommands
from bot.paging.delivery import PagingDelivery
from bot.paging.pages import GROUP as PAGE_GROUP
from bot.paging.pages import KINDS as PAGE_KINDS
from bot.paging.pages import THREAD as PAGE_THREAD
from bot.paging.providers.console import ConsolePager
from bot.paging.providers.ports import Pager
from bot.paging.providers.registry import provider_pagers
from bot.paging.service import PagingService
from bot.scheduler import Job, build_scheduler
from bot.services.commands import CommandRunner
from bot.services.digest import DIGEST, DigestService, StoredHandoffs
from bot.services.incidents import IncidentService
from bot.services.ingest import IngestPipeline
from bot.services.killswitch import KillSwitchService
from bot.services.tickets import TICKET_CREATE, TICKET_UPDATE, TicketEvents, TicketListener
from bot.settings import Settings, environment
from storage import journal
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
    digests: DigestService
    ticket_events: TicketEvents
    callback_guard: CallbackGuard  # where handoff callbacks may go
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

    def stop_delivery(self) -> None:
        """Stop every delivery lane's thread (tests and tools then deliver with deliver_due)."""
        for worker in self.workers:
            worker.stop()

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
    resolver: Resolver | None = None,
    slack_interval_s: float = 1.0,
) -> Container:
    """Build a container from settings (read from the environment when not given).

    `slack_interval_s` paces posts to one Slack channel (Slack allows about one a second).
    """
    settings = settings or Settings()
    policy = policy or load_policy(settings.ai_incident_config, environment())
    engine = engine or create_db_engine(settings.database_url)
    metrics = Metrics()
    safe = SafeText(Redactor(policy.redaction))
    incidents = IncidentService(policy=policy, clock=clock)
    killswitch = KillSwitchService(policy=policy, clock=clock)
    incidents.subscribe(killswitch.on_incident_event)
    digests = DigestService(policy=policy, clock=clock, handoffs=StoredHandoffs())
    client = _slack_client(settings)
    notifier = (
        SlackChat(client, per_channel_interval=slack_interval_s, clock=clock)
        if client is not None
        else ConsoleChat(console)
    )
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
        paused=killswitch.is_paused,
        tickets=policy.jira.enabled,
        on_first_post=tickets.card_posted,
    )
    handlers: dict[str, Handler] = {
        journal.CARD: chat.card,
        journal.JOURNAL: chat.journal,
        journal.REPORT: chat.report,
        DIGEST: DigestDelivery(
            engine=engine,
            chat=notifier,
            digests=digests,
            safe=safe,
            slack=not settings.local_mode,
            clock=clock,
        ).post,
    }
    # handoffs (§8): review cards and their threads ride the chat lane
    handoff_service = HandoffService(policy=policy, clock=clock, killswitch=killswitch)
    handoff_chat = HandoffChatDelivery(
        engine=engine,
        chat=notifier if client is not None else ConsoleHandoffChat(console),
        safe=safe,
        channel=handoff_service.review_channel,
        slack=not settings.local_mode,
        clock=clock,
        workflow_known=handoff_service.workflow_known,
    )
    handlers[handoff_kinds.CARD] = handoff_chat.card
    handlers[handoff_kinds.THREAD] = handoff_chat.thread
    if policy.jira.enabled:
        handoff_service.subscribe(HandoffTicketListener(policy))
    worker = DeliveryWorker(
        engine=engine, handlers=handlers, clock=clock, kinds=list(handlers), name="delivery-chat"
    )
    lanes: list[DeliveryWorker] = [
        # Jira gets a lane of its own: a Jira that times out must not hold Slack posts back
        DeliveryWorker(
            engine=engine,
            handlers={
                TICKET_CREATE: tickets.create,
                TICKET_UPDATE: tickets.update,
                HANDOFF_TICKET_CREATE: tickets.handoff_create,
                HANDOFF_TICKET_UPDATE: tickets.handoff_update,
            },
            clock=clock,
            kinds=[TICKET_CREATE, TICKET_UPDATE, HANDOFF_TICKET_CREATE, HANDOFF_TICKET_UPDATE],
            name="delivery-tickets",
        )
    ]

    def poke() -> None:
        for lane in (worker, *lanes):
            lane.poke()

    # paging: a listener on incident events, a scheduler job, delivery handlers per channel;
    # the Slack DMs and mentions on one lane, the providers on another, so a pager that is
    # down or slow never holds up the DM that must still go out
    paging = PagingService(policy=policy, clock=clock)
    incidents.subscribe(paging)
    # a handoff's SLA mentions whoever is on call for its workflow and, last, pages them
    handoff_paging = HandoffPaging(policy=policy, incidents=incidents, paging=paging)
    handoff_service.use_oncall(handoff_paging.oncall)
    handoff_service.add_pager(handoff_paging)
    paging_delivery = PagingDelivery(
        engine=engine,
        pagers=build_pagers(settings, policy, client, safe, console, slack_interval_s, clock),
        chat=notifier,
        safe=safe,
        policy=policy,
        clock=clock,
        group_members=SlackGroups(client).members if client is not None else None,
        default_channel=policy.default_channel,
    )
    page_handlers = paging_delivery.handlers()
    to_slack = {PAGE_KINDS["slack_dm"], PAGE_THREAD, PAGE_GROUP}
    for name, kinds in (
        ("delivery-paging-slack", sorted(to_slack)),
        ("delivery-paging", sorted(set(page_handlers) - to_slack)),
    ):
        lanes.append(
            DeliveryWorker(
                engine=engine,
                handlers={k: page_handlers[k] for k in kinds},
                clock=clock,
                kinds=kinds,
                name=name,
            )
        )

    pipeline = IngestPipeline(engine=engine, service=incidents, metrics=metrics, on_commit=poke)
    jobs: list[Job] = [
        incidents.review_due,
        incidents.escalate_due,
        paging.escalate_due,
        digests.claim_due,
        handoff_service.expire_leases,
        handoff_service.sla_due,
    ]
    scheduler = build_scheduler(engine, jobs, poke, scheduler_interval_s)
    token = (
        settings.ai_incident_webhook_token.get_secret_value()
        if settings.ai_incident_webhook_token
        else None
    )
    if token is None and settings.local_mode:
        token = LOCAL_DEV_TOKEN
    # decisions go back to agents on a lane of their own: an agent that is down holds up no card;
    # where they may go is checked on arrival and again before each attempt
    callback_guard = CallbackGuard(
        policy=policy, resolver=resolver or SystemResolver(), local_mode=settings.local_mode
    )
    callbacks = CallbackDelivery(
        engine=engine,
        sender=HttpCallbacks(guard=callback_guard),
        secret_for=lambda source: callback_secret(policy, source, token),
        safe=safe,
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
        digests=digests,
        paging=PagingCommands(
            engine=engine, policy=policy, paging=paging, clock=clock, after_commit=poke
        ),
        handoffs=handoff_runner,
    )
    slack_app = None
    socket_mode = None
    app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else None
    if client is not None and (settings.slack_signing_secret is not None or app_token):
        from handlers.slack.app import build_bolt_app

        slack_app = build_bolt_app(
            client=client,
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
        digests=digests,
        ticket_events=TicketEvents(
            engine=engine, policy=policy, incidents=incidents, clock=clock, after_commit=poke
        ),
        slack_app=slack_app if settings.slack_signing_secret is not None else None,
        socket_mode=socket_mode,
        lanes=lanes,
        handoffs=handoff_runner,
        callback_guard=callback_guard,
    )


def build_pagers(
    settings: Settings,
    policy: Policy,
    client: WebClient | None,
    safe: SafeText,
    console: TextIO | None = None,
    slack_interval_s: float = 1.0,
    clock: Callable[[], datetime] = utc_now,
) -> dict[str, Pager]:
    """Return a Pager per channel: the real one where configured, else one that prints."""
    slack_dm: Pager = (
        SlackDirect(
            client, safe, SlackChat(client, per_channel_interval=slack_interval_s, clock=clock)
        )
        if client is not None
        else ConsolePager("Slack DM", console, why="local mode")
    )
    return {"slack_dm": slack_dm, **provider_pagers(settings, policy.paging, console)}
