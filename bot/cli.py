"""The `ai-incident` command: serve, migrate, check-config, export, digest, watch, changes."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pydantic import SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from bot.config import (
    ConfigError,
    ConfigProblem,
    Policy,
    field_line,
    load_policy,
    parse_policy,
    secret_advice,
    secret_weakness,
    weak_secret_problems,
)
from bot.domain.incidents import InvalidIncidentId, parse_incident_id
from bot.logs import configure_logging, uvicorn_log_config
from bot.paging.channels import provider_keys_text
from bot.paging.escalation import unreachable_people
from bot.rendering.cards import export_json, export_markdown
from bot.settings import Settings, environment
from storage.db import create_db_engine, migrate, readonly
from storage.repositories import incident_view

if TYPE_CHECKING:
    from bot.domain.watch.history import Change

T = TypeVar("T")

__all__ = ["main", "secret_problems"]

LOCAL_BANNER = """
************************************************************************
*  ai-incident-bot is running in LOCAL MODE (no SLACK_BOT_TOKEN set).   *
*  Nothing is sent to Slack or pagers: what would be posted is printed  *
*  here, and so are Jira tickets unless JIRA_URL and JIRA_API_TOKEN     *
*  are set. Webhook token: {token:<45}*
*  Database: {db:<58}*
************************************************************************
"""


def _shown(url: str) -> str:
    """Return a database URL fit to print: no password."""
    return make_url(url).render_as_string(hide_password=True)


def _shown_token(token: str | None) -> str:
    """Return the webhook token fit to print: only the well-known local default is shown."""
    from bot.wiring import LOCAL_DEV_TOKEN

    if token is None:
        return "none (every webhook gets 401)"
    if token == LOCAL_DEV_TOKEN:
        return token
    return "from AI_INCIDENT_WEBHOOK_TOKEN (not shown)"


def secret_problems(settings: Settings, policy: Policy) -> list[ConfigProblem]:
    """Return each weak secret `serve` would run with: the policy file's and the environment's.

    Outside local mode `serve` refuses to start on any of them; local mode warns.
    """
    path = settings.ai_incident_config
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    problems = weak_secret_problems(policy, text, file=str(path))
    from_environment: dict[str, SecretStr | None] = {
        "AI_INCIDENT_WEBHOOK_TOKEN": settings.ai_incident_webhook_token,
        "SLACK_SIGNING_SECRET": settings.slack_signing_secret,
    }
    for name, secret in from_environment.items():
        value = secret.get_secret_value() if secret is not None else ""
        reason = secret_weakness(value) if value else None  # unset: not configured
        if reason is not None:
            problems.append(
                ConfigProblem("environment", name, f"{reason}; {secret_advice([name])}")
            )
    return problems


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from bot.wiring import bootstrap
    from handlers.http import create_app

    try:
        policy = load_policy(settings.ai_incident_config, environment())
    except ConfigError as exc:
        print(f"ai-incident: the policy file has problems:\n{exc}", file=sys.stderr)
        return 2
    weak = secret_problems(settings, policy)
    if weak and not settings.local_mode:
        print(
            "ai-incident: refusing to start: these secrets are empty, placeholders or too short, "
            "so anyone could send alerts, open handoffs or resolve incidents with them (only "
            "local mode, without SLACK_BOT_TOKEN, accepts them):",
            *weak,
            sep="\n",
            file=sys.stderr,
        )
        return 2
    for problem in weak:
        logging.getLogger("bot").warning("weak secret, accepted in local mode only: %s", problem)
    container = bootstrap(settings, policy=policy)
    try:
        migrate(container.engine)
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        print(
            f"ai-incident: cannot reach {_shown(settings.database_url)}: {reason}", file=sys.stderr
        )
        return 1
    if settings.local_mode:
        print(
            LOCAL_BANNER.format(
                token=_shown_token(container.webhook_token), db=_shown(settings.database_url)[:58]
            ),
            flush=True,
        )
    if (
        not settings.local_mode
        and settings.slack_signing_secret is None
        and settings.slack_app_token is None
    ):
        logging.getLogger("bot").warning(
            "neither SLACK_SIGNING_SECRET (HTTP mode) nor SLACK_APP_TOKEN (Socket Mode) is set: "
            "slash commands, buttons and thread capture are off"
        )
    for problem in unreachable_problems(container.policy, "", str(settings.ai_incident_config)):
        logging.getLogger("bot").warning("%s", problem.message)
    if not settings.local_mode and not settings.jira_configured and container.policy.jira.enabled:
        logging.getLogger("bot").warning(
            "JIRA_URL and JIRA_API_TOKEN are not both set: tickets are printed, not filed "
            "(set jira.enabled: false in the policy file to turn tickets off)"
        )
    if container.webhook_token is None and not container.policy.sources:
        logging.getLogger("bot").warning(
            "AI_INCIDENT_WEBHOOK_TOKEN is not set and no source has a token: every webhook gets 401"
        )
    app = create_app(container)
    # what start-up loaded (modules, the policy, the app) lives as long as the process: keep it
    # out of the cyclic collector's full passes, which otherwise scan it again and again
    # under load (a tenth of a busy bot's CPU)
    gc.freeze()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
        log_config=uvicorn_log_config(),
        access_log=args.access_log,
    )
    return 0


def _migrate(_args: argparse.Namespace, settings: Settings) -> int:
    engine = create_db_engine(settings.database_url)
    migrate(engine)
    print(f"database at the newest migration ({_shown(settings.database_url)})")
    return 0


def _check_config(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.file) if args.file else settings.ai_incident_config
    if not path.exists():
        print(f"{path}: no such file", file=sys.stderr)
        return 1
    text = path.read_text(encoding="utf-8")
    try:
        policy = parse_policy(text, file=str(path), env=environment())
    except ConfigError as exc:
        for problem in exc.problems:
            print(str(problem), file=sys.stderr)
        print(f"{path}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return 1
    problems = sorted(
        weak_secret_problems(policy, text, file=str(path))
        + unreachable_problems(policy, text, str(path)),
        key=lambda p: p.line or 0,
    )
    if problems:
        for problem in problems:
            print(str(problem), file=sys.stderr)
        print(f"{path}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(
        f"{path}: OK — {len(policy.workflows)} workflow(s), {len(policy.people)} people, "
        f"{len(policy.sources)} source(s), {len(policy.escalation_policies)} escalation policy(ies), "
        f"{len(policy.schedules)} schedule(s)"
    )
    return 0


def unreachable_problems(policy: Policy, text: str, file: str) -> list[ConfigProblem]:
    """Return a problem for each person who may be paged but cannot be reached."""
    problems = []
    for person in unreachable_people(policy):
        where = ", ".join(person.where)
        problems.append(
            ConfigProblem(
                file,
                f"people.{person.person}",
                f"{person.person} may be paged ({where}) but cannot be reached: no slack_id, and "
                f"no paging provider ({provider_keys_text()}) is configured",
                field_line(text, f"people.{person.person}") or field_line(text, person.where[0]),
            )
        )
    return problems


def _export(args: argparse.Namespace, settings: Settings) -> int:
    from bot.config import load_policy
    from bot.domain.redaction import Redactor, SafeText

    try:
        number = parse_incident_id(args.incident)
    except InvalidIncidentId as exc:
        print(str(exc), file=sys.stderr)
        return 2
    safe: SafeText | None = None
    if not args.raw:
        # redacted with the policy's own patterns, as Slack and Jira see it
        try:
            policy = load_policy(settings.ai_incident_config, environment())
        except ConfigError as exc:
            print(f"ai-incident: the policy file has problems:\n{exc}", file=sys.stderr)
            return 2
        safe = SafeText(Redactor(policy.redaction))
    engine = create_db_engine(settings.database_url)
    try:
        with Session(readonly(engine)) as session:
            view = incident_view(session, number)
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0]
        print(
            f"cannot read incidents from {_shown(settings.database_url)}: {reason} "
            "(is DATABASE_URL right, and has `ai-incident migrate` run?)",
            file=sys.stderr,
        )
        return 1
    if view is None:
        print(
            f"INC-{number} does not exist in {_shown(settings.database_url)}",
            file=sys.stderr,
        )
        return 1
    if args.format == "json":
        print(json.dumps(export_json(view, safe), indent=2, ensure_ascii=False))
    else:
        print(export_markdown(view, safe), end="")
    return 0


def _digest(args: argparse.Namespace, settings: Settings) -> int:
    from zoneinfo import ZoneInfo

    from bot.config import load_policy
    from bot.domain.digest import Week
    from bot.domain.redaction import Redactor, SafeText
    from bot.rendering.reports import digest_text
    from bot.services.digest import DigestService
    from bot.wiring import utc_now

    try:
        policy = load_policy(settings.ai_incident_config, environment())
    except ConfigError as exc:
        print(f"ai-incident: the policy file has problems:\n{exc}", file=sys.stderr)
        return 2
    service = DigestService(policy=policy, clock=utc_now)
    try:
        week = Week.parse(args.week) if args.week else service.current_week()
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    engine = create_db_engine(settings.database_url)
    try:
        with Session(readonly(engine)) as session:
            digest = service.build(session, week)
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0]
        print(
            f"cannot read incidents from {_shown(settings.database_url)}: {reason} "
            "(is DATABASE_URL right, and has `ai-incident migrate` run?)",
            file=sys.stderr,
        )
        return 1
    safe = SafeText(Redactor(policy.redaction))
    print(digest_text(digest, safe.plain, ZoneInfo(policy.timezone), slack=False))
    return 0


def _read_watched(settings: Settings, read: Callable[[Session], T]) -> T | None:
    """Return what `read` reads of the watched history in a read-only session; None, with the
    reason on stderr, for an unknown workflow or a database that cannot be read."""
    from bot.services.errors import UnknownWorkflow

    engine = create_db_engine(settings.database_url)
    try:
        with Session(readonly(engine)) as session:
            return read(session)
    except UnknownWorkflow as exc:
        print(str(exc), file=sys.stderr)
        return None
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0]
        print(
            f"cannot read the watched history from {_shown(settings.database_url)}: {reason} "
            "(is DATABASE_URL right, and has `ai-incident migrate` run?)",
            file=sys.stderr,
        )
        return None
    finally:
        engine.dispose()


def _changes(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from bot.config import load_policy
    from bot.rendering.changes import change_line
    from bot.services.watch import WatchService
    from storage import watch

    now = datetime.now(UTC)
    try:
        policy = load_policy(settings.ai_incident_config, environment())
    except ConfigError as exc:
        print(f"ai-incident: the policy file has problems:\n{exc}", file=sys.stderr)
        return 2
    service = WatchService(policy=policy, clock=lambda: now)

    def read(session: Session) -> list[Change]:
        names = [service.resolve(session, args.workflow)] if args.workflow else None
        since = now - timedelta(days=max(args.days, 0))
        return watch.changes(session, workflows=names, since=since)

    found = _read_watched(settings, read)
    if found is None:
        return 1
    newest = sorted(found, key=lambda c: c.at, reverse=True)
    if args.format == "json":
        rows = [
            {
                "workflow": c.workflow,
                "kind": c.kind.value,
                "before": c.before,
                "after": c.after,
                "at": c.at.isoformat().replace("+00:00", "Z"),
                "source": c.source.value,
            }
            for c in newest
        ]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    elif not newest:
        print(f"no model or prompt version changed in the last {args.days} days")
    else:
        zone = ZoneInfo(policy.timezone)
        for change in newest:
            print(change_line(change, str, zone, workflow=True))
    return 0


def _watch(args: argparse.Namespace, settings: Settings) -> int:
    from bot.config import load_policy
    from bot.domain.numbers import finite_json
    from bot.rendering.watch import figures_text
    from bot.services.killswitch import KillSwitchService
    from bot.services.watch import WatchService
    from bot.services.watch_rules import WatchJudge

    def utc_now() -> datetime:
        # not the composition root's clock: importing it would load the whole bot
        return datetime.now(UTC)

    try:
        policy = load_policy(settings.ai_incident_config, environment())
    except ConfigError as exc:
        print(f"ai-incident: the policy file has problems:\n{exc}", file=sys.stderr)
        return 2
    switches = KillSwitchService(policy=policy, clock=utc_now)
    judge = WatchJudge(policy=policy, switches=switches)
    service = WatchService(policy=policy, clock=utc_now, judge=judge)
    figures = _read_watched(settings, lambda session: service.figures(session, args.workflow))
    if figures is None:
        return 1
    if args.format == "json":
        rows = finite_json([f.as_json() for f in figures])
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    elif not figures:
        print("no workflows: none in the policy file, and none has sent runs")
    else:
        print(figures_text(figures, now=utc_now()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser (every subcommand has --help)."""
    parser = argparse.ArgumentParser(
        prog="ai-incident",
        description="Incident desk in Slack for teams running AI automations.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve", help="run the bot: HTTP server, Slack, scheduler, delivery worker"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--access-log", action="store_true", help="log every HTTP request")
    serve.set_defaults(func=_serve)
    mig = sub.add_parser("migrate", help="upgrade the database schema to the newest revision")
    mig.set_defaults(func=_migrate)
    check = sub.add_parser(
        "check-config", help="validate the policy file; non-zero exit on problems"
    )
    check.add_argument("file", nargs="?", help="policy file (default: $AI_INCIDENT_CONFIG)")
    check.set_defaults(func=_check_config)
    export = sub.add_parser("export", help="print an incident with its alerts and journal")
    export.add_argument("incident", help="incident id, e.g. INC-7")
    export.add_argument("--format", choices=["json", "md"], default="md")
    export.add_argument(
        "--raw",
        action="store_true",
        help="print the stored text as it is: secrets and personal data are not redacted",
    )
    export.set_defaults(func=_export)
    digest = sub.add_parser(
        "digest", help="print the weekly review digest as text (it posts on its schedule)"
    )
    digest.add_argument(
        "--preview",
        action="store_true",
        help="print the digest of the week in progress (the default without --week)",
    )
    digest.add_argument("--week", help="a past ISO week instead, e.g. 2026-W47")
    digest.set_defaults(func=_digest)
    watch = sub.add_parser(
        "watch", help="print the watched AI workflows' figures: runs, errors, latency, cost"
    )
    watch.add_argument("--workflow", help="one workflow (by name or alias) instead of all")
    watch.add_argument("--format", choices=["text", "json"], default="text")
    watch.set_defaults(func=_watch)
    changes = sub.add_parser(
        "changes", help="print the workflows' changes of model and prompt version, newest first"
    )
    changes.add_argument("--workflow", help="one workflow (by name or alias) instead of all")
    changes.add_argument("--days", type=int, default=30, help="how far back (default 30 days)")
    changes.add_argument("--format", choices=["text", "json"], default="text")
    changes.set_defaults(func=_changes)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line."""
    args = build_parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level)
    result: int = args.func(args, settings)
    return result


if __name__ == "__main__":
    sys.exit(main())
