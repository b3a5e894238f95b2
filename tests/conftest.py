"""Shared fixtures: an in-process bot on SQLite (or both backends), payload fixtures, the example policy."""

from __future__ import annotations

import io
import json
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine

from bot.config import Policy, load_policy
from bot.integrations.callback_targets import Resolver
from bot.settings import Settings
from bot.wiring import Container, bootstrap
from handlers.http import create_app
from storage.db import create_db_engine, migrate
from tests.standins.jira import JiraStandin
from tests.standins.slack import SlackStandin
from tests.support.databases import Templates, database, use_templates
from tests.support.resolver import FakeResolver

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ai-incident.example.yml"
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def payload(name: str) -> dict[str, Any]:
    """Return a copy of a payload fixture."""
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def example_policy() -> Policy:
    """Load the example policy file as the tests and users do."""
    return load_policy(EXAMPLE, {})


def without_tickets(policy: Policy | None = None) -> Policy:
    """The policy (the example by default) with Jira off: tests of other edges see no tickets."""
    policy = policy or example_policy()
    return policy.model_copy(update={"jira": policy.jira.model_copy(update={"enabled": False})})


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@dataclass
class Bot:
    container: Container
    client: TestClient
    console: io.StringIO
    clock: FakeClock
    url: str

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        return self.client.post(path, json=body, headers=AUTH if headers is None else headers)

    def close(self) -> None:
        """Close the database pool; fail when a thread still holds one of its connections."""
        engine = self.container.engine
        held = engine.pool.checkedout()  # type: ignore[attr-defined]
        engine.dispose()
        assert held == 0, f"{held} connection(s) to {self.url} still checked out at teardown"


@pytest.fixture(autouse=True)
def _no_open_postgres_connections() -> Iterator[None]:
    """Fail a test that leaves a PostgreSQL connection open: an engine it never disposed of, or
    a thread still holding a connection when the test ended."""
    engines: weakref.WeakSet[Engine] = weakref.WeakSet()

    def seen(conn: Connection) -> None:
        if conn.engine.dialect.name == "postgresql":
            engines.add(conn.engine)

    sa_event.listen(Engine, "engine_connect", seen)
    try:
        yield
    finally:
        sa_event.remove(Engine, "engine_connect", seen)
    open_ = {
        engine.url.database: engine.pool.status()
        for engine in engines
        if engine.pool.checkedin() or engine.pool.checkedout()  # type: ignore[attr-defined]
    }
    assert not open_, f"PostgreSQL engines left with open connections: {open_}"


# every bot made so far; a test closes the ones it made when it ends, passing or failing
_bots: list[Bot] = []


@pytest.fixture(autouse=True)
def _close_bots() -> Iterator[None]:
    """Dispose of the engine of every bot the test made (module fixtures close their own): a
    pool left to the garbage collector closes nothing, and a connection it held is reported
    during some later test."""
    start = len(_bots)
    yield
    made = _bots[start:]
    del _bots[start:]
    for bot in made:
        bot.close()


@pytest.fixture(scope="session", autouse=True)
def _database_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Migrated databases that `db_url` copies; each is built the first time a test needs it."""
    templates = Templates(tmp_path_factory.mktemp("templates"))
    use_templates(templates)
    yield
    use_templates(None)
    templates.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked `both_backends` run their database fixtures on SQLite and PostgreSQL."""
    wanted = {"db_url", "empty_db_url"} & set(metafunc.fixturenames)
    if wanted and metafunc.definition.get_closest_marker("both_backends"):
        backends = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
        metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend of the test: SQLite, unless it is marked `both_backends`."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of a migrated database of its own (SQLite; see `both_backends`)."""
    with database(backend, tmp_path, migrated=True) as url:
        yield url


@pytest.fixture
def empty_db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of an empty database, for tests of migrating one (SQLite; see `both_backends`)."""
    with database(backend, tmp_path) as url:
        yield url


def make_bot(
    db_url: str,
    policy: Policy | None = None,
    clock: FakeClock | None = None,
    settings: Settings | None = None,
    resolver: Resolver | None = None,
    slack_interval_s: float = 1.0,
) -> Bot:
    """Build and migrate an in-process bot; the caller enters `client`.

    Without `settings` the bot runs in local mode on `db_url`, printing to `console`. Callback
    hosts are looked up in `resolver`, by default one that knows no name: tests never use DNS.
    `slack_interval_s=0` lifts the pacing of posts to a channel, for stand-ins that do not
    limit the rate.
    """
    clock = clock or FakeClock()
    engine = create_db_engine(db_url)
    migrate(engine)
    console = io.StringIO()
    settings = settings or Settings(database_url=db_url, ai_incident_webhook_token=TOKEN)
    container = bootstrap(
        settings,
        policy=policy or example_policy(),
        clock=clock,
        console=console,
        engine=engine,
        resolver=resolver or FakeResolver(),
        slack_interval_s=slack_interval_s,
    )
    app = create_app(container)
    bot = Bot(container, TestClient(app), console, clock, db_url)
    _bots.append(bot)
    return bot


@pytest.fixture
def bot(db_url: str) -> Iterator[Bot]:
    """An in-process bot with the example policy, workers running, on each backend."""
    b = make_bot(db_url)
    with b.client:
        yield b
    b.container.engine.dispose()


@pytest.fixture
def slack() -> Iterator[SlackStandin]:
    """The Slack Web API stand-in; the test fails if the bot made a call Slack would refuse."""
    with SlackStandin() as standin:
        yield standin
    standin.assert_no_violations()


@pytest.fixture(params=["cloud", "dc"])
def jira(request: pytest.FixtureRequest) -> Iterator[JiraStandin]:
    """The Jira stand-in as Cloud and as Data Center; fails on requests Jira would refuse."""
    with JiraStandin(mode=request.param) as standin:
        yield standin
    standin.assert_no_violations()


@pytest.fixture
def cloud() -> Iterator[JiraStandin]:
    """The Jira stand-in as Jira Cloud only."""
    with JiraStandin(mode="cloud") as standin:
        yield standin
    standin.assert_no_violations()
