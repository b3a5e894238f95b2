"""Logging of the `ai-incident` command: credentials in URLs never reach a log line.

Callback and paging URLs may carry credentials (`https://user:password@host/…`, `?token=…`), and
Jira Data Center sends its webhook secret as `?secret=`. httpx logs every request URL at INFO,
delivery errors quote the URL they failed on, and the access log writes each request's query.
One filter on every handler blanks those parts out, whoever logs them.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping
from typing import Any, TextIO

__all__ = [
    "REDACTED",
    "RedactCredentials",
    "configure_logging",
    "redact_credentials",
    "uvicorn_log_config",
]

REDACTED = "[REDACTED]"

_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)[^/\s@?#'\"<>]+@", re.IGNORECASE)
# a query parameter whose name says it carries a credential: secret, token, api_key, sig, …
_SECRET_PARAM = re.compile(
    r"(?P<name>[?&;][^=&;?#\s'\"]*"
    r"(?:secret|token|key|sig|pass|pwd|auth|credential|session|code)"
    r"[^=&;?#\s'\"]*=)[^&;#\s'\"]*",
    re.IGNORECASE,
)


def redact_credentials(text: str) -> str:
    """Blank out URL credentials in `text`: the user-info part and secret query parameters."""
    if "@" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(rf"\g<scheme>{REDACTED}@", text)
    return _SECRET_PARAM.sub(rf"\g<name>{REDACTED}", text)


def _redacted_arg(arg: Any) -> Any:
    if arg is None or isinstance(arg, bool | int | float):
        return arg  # keeps %d and %.1f working
    text = str(arg)
    clean = redact_credentials(text)
    return arg if clean == text else clean


class RedactCredentials(logging.Filter):
    """A handler filter that redacts URL credentials in the message, its arguments and traceback.

    The arguments are redacted one by one, so formatters that read them (uvicorn's access log
    builds its line from `record.args`) keep working.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _redacted_arg(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted_arg(arg) for arg in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {key: _redacted_arg(arg) for key, arg in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_credentials(record.exc_text)
        return True


def configure_logging(level: str, stream: TextIO | None = None) -> None:
    """Log to stderr (or `stream`) at `level`, every handler of the root logger redacting."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=stream,
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactCredentials) for f in handler.filters):
            handler.addFilter(RedactCredentials())
    # the scheduler's job bookkeeping is noise at INFO
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def uvicorn_log_config() -> dict[str, Any]:
    """Return uvicorn's own logging set-up with the redacting filter on its handlers."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_credentials"] = {"()": RedactCredentials}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact_credentials")
    return config
