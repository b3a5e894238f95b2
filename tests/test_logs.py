"""Credentials in URLs never reach a log line: httpx's request lines, delivery errors, tracebacks."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import httpx
import pytest

from bot.logs import RedactCredentials, redact_credentials


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """What the `httpx` and `bot` loggers write through a redacting handler."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactCredentials())
    loggers = [logging.getLogger("httpx"), logging.getLogger("bot.test")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def test_httpx_request_lines_lose_the_credentials_of_a_callback_url(
    captured: io.StringIO,
) -> None:
    url = "https://agent:hunter2-pass@agent.example/decisions?token=tok-8c1f&run=42&sig=abc123"
    transport = httpx.MockTransport(lambda request: httpx.Response(204))
    with httpx.Client(transport=transport) as client:
        assert client.post(url, content=b"{}").status_code == 204
    line = captured.getvalue()
    assert "HTTP Request: POST https://[REDACTED]@agent.example/decisions" in line
    assert "?token=[REDACTED]&run=42&sig=[REDACTED]" in line
    for secret in ("hunter2-pass", "agent:", "tok-8c1f", "abc123"):
        assert secret not in line
    assert '"HTTP/1.1 204 No Content"' in line


def test_messages_arguments_and_tracebacks_are_redacted_numbers_stay_numbers(
    captured: io.StringIO,
) -> None:
    log = logging.getLogger("bot.test")
    url = "http://ops:pw-1234@hooks.internal.example/page?api_key=k-99"
    log.warning("callback to %s answered HTTP %d; retrying in %.1fs", url, 503, 2.5)
    log.warning(f"callback to {url} failed")
    try:
        raise RuntimeError(f"cannot reach {url}")
    except RuntimeError:
        log.exception("delivery failed")
    text = captured.getvalue()
    assert "pw-1234" not in text and "k-99" not in text and "ops:" not in text
    assert (
        "callback to http://[REDACTED]@hooks.internal.example/page?api_key=[REDACTED] "
        "answered HTTP 503; retrying in 2.5s"
    ) in text
    assert "RuntimeError: cannot reach http://[REDACTED]@hooks.internal.example/" in text


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        (
            '127.0.0.1:5 - "POST /webhooks/jira?secret=s3cr3t HTTP/1.1" 401',
            '127.0.0.1:5 - "POST /webhooks/jira?secret=[REDACTED] HTTP/1.1" 401',
        ),
        ("/webhooks/alerts?source=grafana", "/webhooks/alerts?source=grafana"),
        (
            "postgresql://bot:pg-pass@db.internal:5432/incidents",
            "postgresql://[REDACTED]@db.internal:5432/incidents",
        ),
        ("mail alice@example.com", "mail alice@example.com"),
        ("https://example.com/a@b?x=1", "https://example.com/a@b?x=1"),
        (
            "https://h/cb?access_token=a&Password=b;auth=c",
            "https://h/cb?access_token=[REDACTED]&Password=[REDACTED];auth=[REDACTED]",
        ),
    ],
)
def test_what_is_redacted(text: str, clean: str) -> None:
    assert redact_credentials(text) == clean
