"""The served OpenAPI document: every reference resolves, every way to authenticate is named.

The webhook routes read and validate their own bodies (size limit and auth come first), so
FastAPI does not see their body models; `json_body` declares them, and `install` moves the
schemas they use into `components/schemas`, where their `$ref`s point.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

__all__ = ["SECURITY_SCHEMES", "complete", "install", "json_body"]

_REF = "#/components/schemas/{model}"

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "The webhook token (`AI_INCIDENT_WEBHOOK_TOKEN`) or a source's own token.",
    },
    "grafanaSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Grafana-Alerting-Signature",
        "description": (
            "Grafana's hex HMAC-SHA256 of the body with a source's `hmac_secret`; with "
            "`X-Grafana-Alerting-Signature-Timestamp: <unix>` the HMAC is of `<unix>:<body>` "
            "and the timestamp must be within five minutes."
        ),
    },
    "agentSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-AI-Incident-Signature",
        "description": (
            '`t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">` with a source\'s `hmac_secret`; '
            "`t` must be within five minutes."
        ),
    },
    "jiraSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Hub-Signature",
        "description": "Jira Cloud: `sha256=<hex HMAC-SHA256 of the body>` with `jira.webhook_secret`.",
    },
    "jiraSecret": {
        "type": "apiKey",
        "in": "query",
        "name": "secret",
        "description": "Jira Data Center, which cannot sign: `jira.webhook_secret` in the URL.",
    },
}

# Any one of the listed schemes authenticates a request; health endpoints need none.
_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "/webhooks/alertmanager": [{"bearer": []}, {"grafanaSignature": []}],
    "/webhooks/alerts": [{"bearer": []}, {"grafanaSignature": []}],
    "/webhooks/handoffs": [{"bearer": []}, {"agentSignature": []}],
    "/webhooks/jira": [{"jiraSignature": []}, {"jiraSecret": []}, {"bearer": []}],
    "/healthz": [],
    "/readyz": [],
    "/metrics": [],
}
_DEFAULT_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """Return the `openapi_extra` of a route that validates its JSON body as `model` itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema(ref_template=_REF)}},
        }
    }


def _hoist(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """Move a body schema and its `$defs` into `components`; return the `$ref` to it."""
    for name, definition in schema.pop("$defs", {}).items():
        _add(components, name, definition)
    name = schema["title"]
    _add(components, name, schema)
    return {"$ref": _REF.format(model=name)}


def _add(components: dict[str, Any], name: str, schema: dict[str, Any]) -> None:
    known = components.setdefault(name, schema)
    if known != schema:
        raise ValueError(f"two different OpenAPI schemas are named {name!r}")


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Hoist the body schemas of `json_body` routes and declare how each operation authenticates."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for path, item in document.get("paths", {}).items():
        for operation in item.values():
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                if "title" in media.get("schema", {}):
                    media["schema"] = _hoist(media["schema"], schemas)
            operation["security"] = _SECURITY.get(path, _DEFAULT_SECURITY)
    components["securitySchemes"] = SECURITY_SCHEMES
    return document


def install(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json, built once on first request."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
