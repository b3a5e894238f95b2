"""Kill-switch flags over OFREP, read by the real OpenFeature SDK and its OFREP provider."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import Reason

from bot.services.commands import Invocation
from handlers.errors import install as install_errors
from handlers.http import create_app
from handlers.ofrep import OfrepDeps, build_ofrep_router
from tests.conftest import AUTH, TOKEN, Bot, make_bot
from tests.support.live import serving

ALICE = "U0ALICE001"  # responder in the example policy
FLAG = "workflow.email-summarizer.enabled"


@pytest.fixture
def live(db_url: str) -> Iterator[tuple[Bot, str]]:
    bot = make_bot(db_url)
    with serving(create_app(bot.container)) as url:
        yield bot, url
    bot.container.engine.dispose()


def openfeature_client(url: str, token: str = TOKEN) -> OpenFeatureClient:
    api.set_provider(
        OFREPProvider(url, headers_factory=lambda: {"Authorization": f"Bearer {token}"}),
        domain="ai-incident-test",
    )
    return api.get_client(domain="ai-incident-test")


def command(bot: Bot, text: str, user: str = ALICE) -> str:
    return bot.container.commands.run(Invocation(text=text, user=user, channel="C0SUMMARY01"))


def test_an_openfeature_client_sees_pause_and_resume(live: tuple[Bot, str]) -> None:
    bot, url = live
    client = openfeature_client(url)
    ctx = EvaluationContext(targeting_key="agent-7")

    before = client.get_boolean_details(FLAG, False, ctx)
    assert before.value is True and before.reason == Reason.STATIC
    assert before.variant == "enabled" and before.error_code is None

    answer = command(bot, "pause email-summarizer summaries leak customer names")
    assert "is paused" in answer
    paused = client.get_boolean_details(FLAG, True, ctx)
    assert paused.value is False and paused.variant == "paused"
    assert paused.reason == Reason.TARGETING_MATCH
    assert paused.flag_metadata["changed_by"] == ALICE
    assert paused.flag_metadata["reason"] == "summaries leak customer names"

    assert "running again" in command(bot, "resume email-summarizer")
    assert client.get_boolean_value(FLAG, False, ctx) is True


def test_an_unknown_flag_is_the_sdk_default_with_flag_not_found(live: tuple[Bot, str]) -> None:
    _, url = live
    client = openfeature_client(url)
    details = client.get_boolean_details("workflow.nope.enabled", True)
    assert details.value is True  # the caller's default
    assert details.error_code is not None and details.error_code.value == "FLAG_NOT_FOUND"


def test_a_wrong_token_never_reads_a_flag(live: tuple[Bot, str]) -> None:
    _, url = live
    details = openfeature_client(url, token="wrong").get_boolean_details(FLAG, False)
    assert details.value is False and details.reason == Reason.ERROR


def test_ofrep_wire_shapes(db_url: str) -> None:
    bot = make_bot(db_url)
    with bot.client:
        one = bot.client.post(f"/ofrep/v1/evaluate/flags/{FLAG}", json={}, headers=AUTH)
        assert one.status_code == 200 and one.headers["cache-control"] == "no-store"
        assert one.json() == {
            "key": FLAG,
            "value": True,
            "reason": "STATIC",
            "variant": "enabled",
            "metadata": {"workflow": "email-summarizer", "version": 0},
            "cacheable": False,
        }
        # no body at all is an evaluation without context
        empty = bot.client.post(f"/ofrep/v1/evaluate/flags/{FLAG}", headers=AUTH)
        assert empty.status_code == 200

        missing = bot.client.post("/ofrep/v1/evaluate/flags/checkout.enabled", headers=AUTH)
        assert missing.status_code == 404
        assert missing.json()["errorCode"] == "FLAG_NOT_FOUND"
        assert missing.json()["key"] == "checkout.enabled"

        bad = bot.client.post(f"/ofrep/v1/evaluate/flags/{FLAG}", content=b"{nope", headers=AUTH)
        assert bad.status_code == 400 and bad.json()["errorCode"] == "PARSE_ERROR"
        wrong_ctx = bot.client.post(
            f"/ofrep/v1/evaluate/flags/{FLAG}", json={"context": [1]}, headers=AUTH
        )
        assert wrong_ctx.status_code == 400
        assert wrong_ctx.json()["errorCode"] == "INVALID_CONTEXT"

        assert bot.client.post(f"/ofrep/v1/evaluate/flags/{FLAG}").status_code == 401
        huge = bot.client.post(
            f"/ofrep/v1/evaluate/flags/{FLAG}",
            content=b'{"context": {"x": "' + b"a" * (1 << 20) + b'"}}',
            headers=AUTH,
        )
        assert huge.status_code == 413

        bulk = bot.client.post("/ofrep/v1/evaluate/flags", json={"context": {}}, headers=AUTH)
        assert bulk.status_code == 200
        keys = [f["key"] for f in bulk.json()["flags"]]
        assert FLAG in keys and "workflow.support-chatbot.enabled" in keys
        etag = bulk.headers["etag"]
        same = bot.client.post(
            "/ofrep/v1/evaluate/flags", json={}, headers={**AUTH, "If-None-Match": etag}
        )
        assert same.status_code == 304
        assert "is paused" in command(bot, "pause email-summarizer")
        changed = bot.client.post(
            "/ofrep/v1/evaluate/flags", json={}, headers={**AUTH, "If-None-Match": etag}
        )
        assert changed.status_code == 200 and changed.headers["etag"] != etag
        flags = {f["key"]: f for f in changed.json()["flags"]}
        assert flags[FLAG]["value"] is False

        config = bot.client.get("/ofrep/v1/configuration", headers=AUTH)
        assert config.json()["capabilities"]["flagEvaluation"]["supportedTypes"] == ["boolean"]
        assert "/ofrep/v1/evaluate/flags/{key}" in bot.client.get("/openapi.json").json()["paths"]
    bot.container.engine.dispose()


def test_storage_down_is_503(db_url: str, tmp_path: Path) -> None:
    bot = make_bot(db_url)
    if db_url.startswith("sqlite"):
        broken = sa.create_engine(f"sqlite:///{tmp_path}/missing/dir/x.db")
    else:
        broken = sa.create_engine(
            "postgresql+psycopg://postgres@127.0.0.1:1/none", connect_args={"connect_timeout": 1}
        )
    app = FastAPI()
    # the routes raise; the app's handlers answer, in OFREP's shape
    install_errors(app)
    app.include_router(
        build_ofrep_router(
            OfrepDeps(
                engine=broken,
                policy=bot.container.policy,
                killswitch=bot.container.killswitch,
                global_token=TOKEN,
                max_body_bytes=1 << 20,
            )
        )
    )
    with TestClient(app) as client:
        r = client.post(f"/ofrep/v1/evaluate/flags/{FLAG}", json={}, headers=AUTH)
        assert r.status_code == 503 and r.json()["errorCode"] == "GENERAL"
        assert client.post("/ofrep/v1/evaluate/flags", headers=AUTH).status_code == 503
    broken.dispose()
    bot.container.engine.dispose()
