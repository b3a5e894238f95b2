"""The one answer to a request the database could not take: 503, no connection details."""

from __future__ import annotations

import logging

__all__ = ["STORAGE_UNAVAILABLE", "log_storage_unavailable"]

log = logging.getLogger(__name__)

STORAGE_UNAVAILABLE = "storage unavailable, retry later"


def log_storage_unavailable(exc: BaseException, *, endpoint: str) -> None:
    """Log why `endpoint` answered 503 (senders retry); the answer itself says only that."""
    log.warning("%s answered 503, storage unavailable: %s", endpoint, exc)
