"""Every wait on PostgreSQL is bounded: the settings reach the socket and the server, a connection
attempt to a stalled server gives up, and migrations are exempt from the statement timeout."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from storage.db import PG_CONNECT_ARGS, create_db_engine, migrate
from tests.support.databases import postgres_database
from tests.support.tcp_proxy import FreezableProxy

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = create_db_engine(pg_url)
    yield engine
    engine.dispose()


def test_connections_carry_keepalives_a_user_timeout_and_a_statement_timeout(
    engine: Engine,
) -> None:
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "9s"
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        sock = socket.socket(fileno=socket.dup(dbapi.fileno()))  # type: ignore[attr-defined]
        try:
            option = sock.getsockopt
            assert option(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert option(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 4
            assert option(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 2
            assert option(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
            assert option(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 9000
        finally:
            sock.detach()
            sock.close()


def test_settings_in_the_url_win(pg_url: str) -> None:
    url = make_url(pg_url).update_query_dict(
        {"connect_timeout": "3", "options": "-c statement_timeout=1min"}
    )
    engine = create_db_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "1min"
            assert conn.connection.dbapi_connection.info.get_parameters()["connect_timeout"] == "3"  # type: ignore[union-attr]
    finally:
        engine.dispose()


@pytest.mark.slow  # waits out the connect timeout
def test_a_connection_attempt_to_a_stalled_server_gives_up(pg_url: str) -> None:
    direct = make_url(pg_url)
    assert direct.host is not None and direct.port is not None
    with FreezableProxy((direct.host, direct.port)) as proxy:
        proxy.freeze()  # accepts the connection, never answers the start-up
        engine = create_db_engine(direct.set(port=proxy.port).render_as_string(hide_password=False))
        started = time.monotonic()
        try:
            with pytest.raises(sa.exc.OperationalError), engine.connect():
                pass
        finally:
            engine.dispose()
            proxy.thaw()
        took = time.monotonic() - started
    assert took < PG_CONNECT_ARGS["connect_timeout"] + 3, took


def test_migrations_are_not_cut_short_by_the_statement_timeout(engine: Engine) -> None:
    seen: list[str] = []

    @event.listens_for(engine, "after_cursor_execute")
    def look(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("CREATE TABLE") and not seen:
            seen.append(cursor.connection.execute("SHOW statement_timeout").fetchone()[0])

    migrate(engine)
    assert seen == ["0"]
    with engine.connect() as conn:  # and the application's connections keep theirs
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "9s"
