"""The one answer to a request the database could not take: 503, no connection details."""

from __future__ import annotations

import logging

from fastapi.responses import JSONResponse

__all__ = ["STORAGE_UNAVAILABLE", "storage_unavailable"]

log = logging.getLogger(__name__)

STORAGE_UNAVAILABLE = "storage unavailable, retry later"


def storage_unavailable(exc: BaseException, *, endpoint: str) -> JSONResponse:
    """Answer 503 (senders retry); the database's host, port and reason go to the log only."""
    log.warning("%s answered 503, storage unavailable: %s", endpoint, exc)
    return JSONResponse({"error": STORAGE_UNAVAILABLE}, status_code=503)
