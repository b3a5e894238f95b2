"""The composition root: settings, storage, adapters, services, workers and the ASGI app."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
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
from bot.delivery.watch import WatchChartDelivery
from bot.delivery.worker import DeliveryWorker, Handler
from bot.domain.redaction import Redactor, SafeText
from bot.handoffs import service as handoff_outbox
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
from bot.integrations.ports import ChatNotifier, TicketTracker
from bot.integrations.slack_chat import SlackChat
from bot.integrations.slack_dm import SlackDirect
from bot.integrations.slack_groups import SlackGroups
from bot.metrics import Metrics
from bot.paging.commands import PagingCommands
from bot.paging.delivery import PagingDelivery
from bot.paging.providers.console import ConsolePager
from bot.paging.providers.ports import Pager
from bot.paging.providers.registry import provider_pagers
from bot.paging.service import PagingService
from bot.scheduler import Job, build_scheduler
from bot.services.change_commands import ChangeCommands
from bot.services.change_journal import ChangeJournal
from bot.services.commands import CommandRunner
from bot.services.digest import DIGEST, DigestService, StoredHandoffs
from bot.services.incidents import IncidentService
from bot.services.ingest import IngestPipeline
from bot.services.killswitch import KillSwitchService
from bot.services.tickets import TICKET_CREATE, TICKET_UPDATE, TicketEvents, TicketListener
from bot.services.watch import WatchService
from bot.services.watch_commands import WATCH_CHART, SeenOnly, WatchCommands
from bot.services.watch_intake import HistoryPruner, RunIntake
from bot.services.watch_metrics import MetricIntake
from bot.services.watch_rules import WatchEvaluator, WatchJudge
from bot.settings import Settings, environment
from storage import journal
from storage.db import create_db_engine
from storage.pages import GROUP as PAGE_GROUP
from storage.pages import KINDS as PAGE_KINDS
from storage.pages import THREAD as PAGE_THREAD

__all__ = ["LOCAL_DEV_TOKEN", "Container", "bootstrap", "utc_now"]

log = logging.getLogger(__name__)

LOCAL_DEV_TOKEN = "local-dev-token"

GroupMembers = Callable[[Collection[str]], Mapping[str, Collection[str]]]


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
    runs: RunIntake
    metric_intake: MetricIntake  # OTLP metrics into the watched history
    watch: WatchService
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


# -- the builders, in the order bootstrap() calls them ---------------------------------------


@dataclass(frozen=True)
class Base:
    """What everything else is built on: settings, policy, the database, time, redaction."""

    settings: Settings
    policy: Policy
    engine: Engine
    clock: Callable[[], datetime]
    metrics: Metrics
    safe: SafeText


@dataclass(frozen=True)
class Adapters:
    """The outside world: Slack (or the console), Jira, the user-group cache, callback rules."""

    client: WebClient | None
    notifier: ChatNotifier
    handoff_chat: ChatNotifier
    tracker: TicketTracker
    group_members: GroupMembers | None  # one cache for every role check
    callback_guard: CallbackGuard


@dataclass(frozen=True)
class Services:
    """The use cases, each given its collaborators when built."""

    killswitch: KillSwitchService
    paging: PagingService
    incidents: IncidentService
    digests: DigestService
    handoffs: HandoffService
    watch: WatchService
    rules: WatchEvaluator


@dataclass(frozen=True)
class Lanes:
    """The delivery lanes: chat first, then tickets, pages and callbacks."""

    chat: DeliveryWorker
    others: list[DeliveryWorker]

    def poke(self) -> None:
        """Wake every lane: new outbox rows were committed."""
        for lane in (self.chat, *self.others):
            lane.poke()


@dataclass(frozen=True)
class Runners:
    """What the edges call: ingest, slash commands, handoff actions, ticket events."""

    pipeline: IngestPipeline
    commands: CommandRunner
    handoffs: HandoffRunner
    ticket_events: TicketEvents
    runs: RunIntake


def build_base(
    settings: Settings | None,
    policy: Policy | None,
    engine: Engine | None,
    clock: Callable[[], datetime],
) -> Base:
    """Read settings and policy (unless given) and open the database."""
    settings = settings or Settings()
    policy = policy or load_policy(settings.ai_incident_config, environment())
    return Base(
        settings=settings,
        policy=policy,
        engine=engine or create_db_engine(settings.database_url),
        clock=clock,
        metrics=Metrics(),
        safe=SafeText(Redactor(policy.redaction)),
    )


def build_adapters(
    base: Base, *, console: TextIO | None, slack_interval_s: float, resolver: Resolver | None
) -> Adapters:
    """Talk to Slack and Jira where configured, else print to the console."""
    settings = base.settings
    client = _slack_client(settings)
    notifier: ChatNotifier = (
        SlackChat(client, per_channel_interval=slack_interval_s, clock=base.clock)
        if client is not None
        else ConsoleChat(console)
    )
    return Adapters(
        client=client,
        notifier=notifier,
        handoff_chat=notifier if client is not None else ConsoleHandoffChat(console),
        tracker=_tracker(settings, base.policy, console),
        group_members=SlackGroups(client).members if client is not None else None,
        # where handoff callbacks may go: checked on arrival and again before each attempt
        callback_guard=CallbackGuard(
            policy=base.policy,
            resolver=resolver or SystemResolver(),
            local_mode=settings.local_mode,
        ),
    )


def build_services(base: Base) -> Services:
    """Build the services, handing each its listeners, pagers and on-call resolver."""
    policy, clock = base.policy, base.clock
    killswitch = KillSwitchService(policy=policy, clock=clock)
    paging = PagingService(policy=policy, clock=clock)
    incidents = IncidentService(
        policy=policy,
        clock=clock,
        listeners=[
            killswitch.on_incident_event,
            *([TicketListener(policy)] if policy.jira.enabled else []),
            paging,
        ],
    )
    judge = WatchJudge(policy=policy, switches=killswitch)
    # a handoff's SLA mentions whoever is on call for its workflow and, last, pages them
    handoff_paging = HandoffPaging(policy=policy, incidents=incidents, paging=paging)
    handoffs = HandoffService(
        policy=policy,
        clock=clock,
        killswitch=killswitch,
        oncall=handoff_paging.oncall,
        listeners=[HandoffTicketListener(policy)] if policy.jira.enabled else [],
        pagers=[handoff_paging],
    )
    return Services(
        killswitch=killswitch,
        paging=paging,
        incidents=incidents,
        digests=DigestService(policy=policy, clock=clock, handoffs=StoredHandoffs()),
        handoffs=handoffs,
        watch=WatchService(policy=policy, clock=clock, judge=judge),
        rules=WatchEvaluator(judge=judge, policy=policy, clock=clock, incidents=incidents),
    )


def _lane(base: Base, name: str, handlers: Mapping[str, Handler]) -> DeliveryWorker:
    return DeliveryWorker(
        engine=base.engine,
        handlers=dict(handlers),
        clock=base.clock,
        kinds=list(handlers),
        name=name,
    )


def build_chat_lane(
    base: Base, adapters: Adapters, services: Services, tickets: TicketDelivery
) -> DeliveryWorker:
    """Cards, journal lines, reports, digests, watch charts and handoff review cards, one lane."""
    engine, clock, safe = base.engine, base.clock, base.safe
    slack = not base.settings.local_mode
    # a lane asking about a workflow watch has never heard of gets nothing, not a refusal
    seen = SeenOnly(services.watch)
    chat = ChatDelivery(
        engine=engine,
        chat=adapters.notifier,
        safe=safe,
        default_channel=base.policy.default_channel,
        slack=slack,
        clock=clock,
        paused=services.killswitch.is_paused,
        tickets=base.policy.jira.enabled,
        on_first_post=tickets.card_posted,
        watched=seen,
    )
    watch_chart = WatchChartDelivery(
        engine=engine,
        chat=adapters.notifier,
        weeks=seen,
        zone=services.digests.zone,
        clock=clock,
    )
    digest = DigestDelivery(
        engine=engine,
        chat=adapters.notifier,
        digests=services.digests,
        safe=safe,
        slack=slack,
        clock=clock,
    )
    handoff_chat = HandoffChatDelivery(
        engine=engine,
        chat=adapters.handoff_chat,
        safe=safe,
        channel=services.handoffs.review_channel,
        slack=slack,
        clock=clock,
        workflow_known=services.handoffs.workflow_known,
    )
    return _lane(
        base,
        "delivery-chat",
        {
            journal.CARD: chat.card,
            journal.JOURNAL: chat.journal,
            journal.REPORT: chat.report,
            DIGEST: digest.post,
            WATCH_CHART: watch_chart.post,
            handoff_outbox.CARD: handoff_chat.card,
            handoff_outbox.THREAD: handoff_chat.thread,
        },
    )


def build_tickets(base: Base, adapters: Adapters) -> TicketDelivery:
    """Deliver Jira tickets for incidents and handoffs (the console tracker when unset)."""
    settings = base.settings
    return TicketDelivery(
        engine=base.engine,
        tracker=adapters.tracker,
        chat=adapters.notifier,
        safe=base.safe,
        policy=base.policy,
        default_project=settings.jira_project
        or (None if settings.jira_configured else LOCAL_PROJECT),
        clock=base.clock,
    )


def build_ticket_lane(base: Base, tickets: TicketDelivery) -> DeliveryWorker:
    """Jira gets a lane of its own: a Jira that times out must not hold Slack posts back."""
    return _lane(
        base,
        "delivery-tickets",
        {
            TICKET_CREATE: tickets.create,
            TICKET_UPDATE: tickets.update,
            HANDOFF_TICKET_CREATE: tickets.handoff_create,
            HANDOFF_TICKET_UPDATE: tickets.handoff_update,
        },
    )


def build_paging_lanes(
    base: Base, adapters: Adapters, *, console: TextIO | None, slack_interval_s: float
) -> list[DeliveryWorker]:
    """The Slack DMs and mentions on one lane, the providers on another.

    A pager that is down or slow never holds up the DM that must still go out.
    """
    policy = base.policy
    paging_delivery = PagingDelivery(
        engine=base.engine,
        pagers=build_pagers(
            base.settings, policy, adapters.client, base.safe, console, slack_interval_s, base.clock
        ),
        chat=adapters.notifier,
        safe=base.safe,
        policy=policy,
        clock=base.clock,
        group_members=adapters.group_members,
        default_channel=policy.default_channel,
    )
    page_handlers = paging_delivery.handlers()
    to_slack = {PAGE_KINDS["slack_dm"], PAGE_THREAD, PAGE_GROUP}
    return [
        _lane(base, name, {k: page_handlers[k] for k in kinds})
        for name, kinds in (
            ("delivery-paging-slack", sorted(to_slack)),
            ("delivery-paging", sorted(set(page_handlers) - to_slack)),
        )
    ]


def build_callback_lane(
    base: Base, adapters: Adapters, webhook_token: str | None
) -> DeliveryWorker:
    """Decisions go back to agents on a lane of their own: an agent that is down holds up no card."""
    policy = base.policy
    callbacks = CallbackDelivery(
        engine=base.engine,
        sender=HttpCallbacks(guard=adapters.callback_guard),
        secret_for=lambda source: callback_secret(policy, source, webhook_token),
        safe=base.safe,
        clock=base.clock,
    )
    return _lane(base, "delivery-callbacks", {handoff_outbox.CALLBACK: callbacks.deliver})


def build_lanes(
    base: Base,
    adapters: Adapters,
    services: Services,
    *,
    console: TextIO | None,
    slack_interval_s: float,
    webhook_token: str | None,
) -> Lanes:
    """Give each delivery target its own lane, so one that is down holds up no other."""
    tickets = build_tickets(base, adapters)
    return Lanes(
        chat=build_chat_lane(base, adapters, services, tickets),
        others=[
            build_ticket_lane(base, tickets),
            *build_paging_lanes(base, adapters, console=console, slack_interval_s=slack_interval_s),
            build_callback_lane(base, adapters, webhook_token),
        ],
    )


def build_runners(base: Base, adapters: Adapters, services: Services, lanes: Lanes) -> Runners:
    """Build what the edges call; each wakes the lanes after it commits."""
    engine, policy, clock, poke = base.engine, base.policy, base.clock, lanes.poke
    handoffs = HandoffRunner(
        engine=engine,
        service=services.handoffs,
        safe=base.safe,
        after_commit=poke,
        group_members=adapters.group_members,
    )
    commands = CommandRunner(
        engine=engine,
        policy=policy,
        incidents=services.incidents,
        safe=base.safe,
        after_commit=poke,
        group_members=adapters.group_members,
        killswitch=services.killswitch,
        digests=services.digests,
        paging=PagingCommands(
            engine=engine, policy=policy, paging=services.paging, clock=clock, after_commit=poke
        ),
        handoffs=handoffs,
        watch=WatchCommands(
            engine=engine,
            policy=policy,
            watch=services.watch,
            safe=base.safe,
            clock=clock,
            after_commit=poke,
        ),
        changes=ChangeCommands(
            engine=engine, policy=policy, watch=services.watch, safe=base.safe, clock=clock
        ),
    )
    pipeline = IngestPipeline(
        engine=engine, service=services.incidents, metrics=base.metrics, on_commit=poke
    )
    return Runners(
        pipeline=pipeline,
        runs=RunIntake(pipeline=pipeline, policy=policy, clock=clock),
        commands=commands,
        handoffs=handoffs,
        ticket_events=TicketEvents(
            engine=engine,
            policy=policy,
            incidents=services.incidents,
            clock=clock,
            after_commit=poke,
        ),
    )


def build_jobs(base: Base, services: Services) -> list[Job]:
    """Return what the scheduler runs on every tick."""
    return [
        HistoryPruner(policy=base.policy, clock=base.clock),
        services.rules,
        ChangeJournal(policy=base.policy, clock=base.clock),
        services.incidents.review_due,
        services.incidents.escalate_due,
        services.paging.escalate_due,
        services.digests.claim_due,
        services.handoffs.expire_leases,
        services.handoffs.sla_due,
    ]


def build_slack(
    settings: Settings, client: WebClient | None, runners: Runners
) -> tuple[App | None, SocketModeHandler | None]:
    """Build the Bolt app when Slack can reach us (HTTP events or Socket Mode), else nothing."""
    app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else None
    if client is None or (settings.slack_signing_secret is None and not app_token):
        return None, None
    from handlers.slack.app import build_bolt_app

    slack_app = build_bolt_app(client=client, commands=runners.commands, handoffs=runners.handoffs)
    # Socket Mode: Slack's traffic comes over a websocket the bot opens; /slack/events
    # still answers if a signing secret is set
    socket_mode = SocketModeHandler(slack_app, app_token, web_client=client) if app_token else None
    return (slack_app if settings.slack_signing_secret is not None else None), socket_mode


def webhook_token(settings: Settings) -> str | None:
    """Return the token the webhooks require (a fixed one in local mode when none is set)."""
    token = (
        settings.ai_incident_webhook_token.get_secret_value()
        if settings.ai_incident_webhook_token
        else None
    )
    if token is None and settings.local_mode:
        return LOCAL_DEV_TOKEN
    return token


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
    base = build_base(settings, policy, engine, clock)
    token = webhook_token(base.settings)
    adapters = build_adapters(
        base, console=console, slack_interval_s=slack_interval_s, resolver=resolver
    )
    services = build_services(base)
    lanes = build_lanes(
        base,
        adapters,
        services,
        console=console,
        slack_interval_s=slack_interval_s,
        webhook_token=token,
    )
    runners = build_runners(base, adapters, services, lanes)
    jobs = build_jobs(base, services)
    slack_app, socket_mode = build_slack(base.settings, adapters.client, runners)
    return Container(
        settings=base.settings,
        policy=base.policy,
        engine=base.engine,
        metrics=base.metrics,
        safe=base.safe,
        incidents=services.incidents,
        pipeline=runners.pipeline,
        worker=lanes.chat,
        scheduler=build_scheduler(base.engine, jobs, lanes.poke, scheduler_interval_s),
        jobs=jobs,
        webhook_token=token,
        clock=clock,
        commands=runners.commands,
        killswitch=services.killswitch,
        digests=services.digests,
        ticket_events=runners.ticket_events,
        runs=runners.runs,
        slack_app=slack_app,
        socket_mode=socket_mode,
        lanes=lanes.others,
        handoffs=runners.handoffs,
        callback_guard=adapters.callback_guard,
        metric_intake=MetricIntake(pipeline=runners.pipeline, policy=base.policy, clock=clock),
        watch=services.watch,
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
