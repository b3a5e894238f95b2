"""OTLP/HTTP metrics in: `POST /v1/metrics`, as any OpenTelemetry exporter sends them.

Binary protobuf (`application/x-protobuf`) or OTLP JSON (`application/json`), optionally
gzip- or deflate-compressed, with `Authorization: Bearer <token>`. The answer is an
`ExportMetricsServiceResponse` in the request's encoding, with `partial_success` when some
points were rejected; a refusal is a `google.rpc.Status` (JSON `{"code", "message"}` for a JSON
request), with the HTTP status the OTLP specification gives it.

(No postponed annotations: the routes' dependencies are read off their annotations.)
"""

import math
import zlib
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2

from bot.config import Policy
from bot.domain.watch.otlp import Point, PointKind, Temporality
from bot.metrics import Metrics
from bot.services.watch_metrics import MetricIntake
from handlers.auth import Caller, Scope
from handlers.errors import EdgeError, TooLarge, answers_in
from handlers.gate import TokenGate, nesting_problem

__all__ = ["OtlpDeps", "build_otlp_router", "otlp_answer", "points_of"]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# how long a sender waits before retrying when the database is down
RETRY_AFTER_S = 5
_GRPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    503: code_pb2.UNAVAILABLE,
}
_NO_RECORDED_VALUE = 1  # DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK


class OtlpDeps:
    """What the OTLP route needs, handed over by the composition root."""

    def __init__(
        self,
        *,
        policy: Policy,
        global_token: str | None,
        intake: MetricIntake,
        metrics: Metrics,
        max_body_bytes: int,
    ) -> None:
        self.policy = policy
        self.global_token = global_token
        self.intake = intake
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes


class Unsupported(EdgeError):
    """The body is in an encoding this endpoint does not read."""

    status = 415


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def otlp_answer(
    request: Request, status: int, message: str, _code: str, _extra: dict[str, Any]
) -> Response:
    """A refusal as OTLP/HTTP answers one: a google.rpc.Status in the request's encoding."""
    code = _GRPC_CODES.get(status, code_pb2.UNKNOWN if status >= 500 else code_pb2.INVALID_ARGUMENT)
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    if _media_type(request) == JSON:
        return JSONResponse({"code": code, "message": message}, status, headers=headers)
    body = status_pb2.Status(code=code, message=message).SerializeToString()
    return Response(body, status, headers=headers, media_type=PROTOBUF)


def _inflated(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise Unsupported(f"content encoding {encoding!r} is not gzip or deflate")
    # gzip, or zlib-wrapped deflate (what HTTP calls deflate); never more than `limit` bytes out
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise EdgeError(f"body is not valid {encoding} data: {exc}") from None
    if len(out) > limit:
        raise TooLarge(limit)
    if not inflater.eof:
        raise EdgeError(f"body is truncated {encoding} data")
    return out


def _decoded(body: bytes, media_type: str) -> ExportMetricsServiceRequest:
    export = ExportMetricsServiceRequest()
    if media_type == PROTOBUF:
        try:
            export.ParseFromString(body)
        except DecodeError as exc:
            raise EdgeError(f"body is not an ExportMetricsServiceRequest: {exc}") from None
        return export
    if (problem := nesting_problem(body)) is not None:
        raise EdgeError(f"body is {problem}")
    try:
        json_format.Parse(body, export, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise EdgeError(f"body is not OTLP JSON: {exc}") from None
    return export


# -- protobuf messages to the domain's points --------------------------------------------------


def _clean(text: str) -> str:
    # text is stored: no NUL (PostgreSQL refuses it) and no lone surrogate (not UTF-8)
    if text.isascii():
        return text.replace("\x00", "\ufffd") if "\x00" in text else text
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


def _text(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return _clean(value.string_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return repr(value.double_value)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    if kind == "array_value":
        return "[" + ",".join(_text(v) for v in value.array_value.values) + "]"
    if kind == "kvlist_value":
        return (
            "{" + ",".join(f"{kv.key}={_text(kv.value)}" for kv in value.kvlist_value.values) + "}"
        )
    return ""


Attributes = tuple[tuple[str, str], ...]


def _attributes(pairs: Any, known: dict[Attributes, Attributes] | None = None) -> Attributes:
    """Return attributes as (key, text) pairs, the last of a repeated key winning.

    With `known` (one per export), equal attribute sets come back as one tuple, so what the
    domain works out once per attribute set is found by identity.
    """
    seen: dict[str, str] = {}
    kv: KeyValue
    for kv in pairs:
        key, value = kv.key, kv.value
        if value.WhichOneof("value") == "string_value":
            # the common case, without a call per attribute
            text = value.string_value
            if not text.isascii() or "\x00" in text:
                text = _clean(text)
        else:
            text = _text(value)
        seen[key if key.isascii() and "\x00" not in key else _clean(key)] = text
    found = tuple(seen.items())
    if known is None:
        return found
    return known.setdefault(found, found)


def _exponential_bounds(
    point: metrics_pb2.ExponentialHistogramDataPoint,
) -> tuple[tuple[float, ...], tuple[int, ...]]:
    # bucket i of the positive range holds (base**(offset+i), base**(offset+i+1)]; the zero
    # bucket and the negative range (no duration or share is negative) go below the first
    counts = list(point.positive.bucket_counts)
    try:
        bounds = [point.zero_threshold] + [
            2.0 ** ((point.positive.offset + i + 1) * 2.0**-point.scale) for i in range(len(counts))
        ]
    except OverflowError:
        bounds = [math.inf] * (len(counts) + 1)  # refused by the domain as not numbers
    low = point.zero_count + sum(point.negative.bucket_counts)
    return tuple(bounds), (low, *counts, 0)


def points_of(export: ExportMetricsServiceRequest) -> Iterator[Point]:
    """Yield the data points of an export as the domain's points."""
    known: dict[Attributes, Attributes] = {}
    for resource_metrics in export.resource_metrics:
        resource = _attributes(resource_metrics.resource.attributes, known)
        for scope_metrics in resource_metrics.scope_metrics:
            scope, version = scope_metrics.scope.name, scope_metrics.scope.version
            for metric in scope_metrics.metrics:
                yield from _points(metric, resource, scope, version, known)


def _temporality(wire: int) -> Temporality:
    return Temporality(wire) if wire in (1, 2) else Temporality.UNSPECIFIED


def _points(
    metric: metrics_pb2.Metric,
    resource: Attributes,
    scope: str,
    version: str,
    known: dict[Attributes, Attributes],
) -> Iterator[Point]:
    # what is the same for every point of the metric is read once, outside the points' loop
    name, unit = metric.name, metric.unit
    data = metric.WhichOneof("data")
    if data in ("sum", "gauge"):
        if data == "sum":
            kind = PointKind.SUM
            numbers = metric.sum
            temporality = _temporality(metric.sum.aggregation_temporality)
            monotonic = metric.sum.is_monotonic
        else:
            kind = PointKind.GAUGE
            numbers = metric.gauge
            temporality, monotonic = Temporality.UNSPECIFIED, False
        for n in numbers.data_points:
            which = n.WhichOneof("value")
            yield Point(
                name,
                kind,
                n.time_unix_nano,
                n.start_time_unix_nano,
                unit,
                temporality,
                monotonic,
                resource,
                scope,
                version,
                _attributes(n.attributes, known),
                value=n.as_double if which == "as_double" else n.as_int if which else None,
                no_value=bool(n.flags & _NO_RECORDED_VALUE),
            )
    elif data == "histogram":
        temporality = _temporality(metric.histogram.aggregation_temporality)
        # the points of a metric mostly share their bounds: one tuple for all of them
        bounds: tuple[float, ...] = ()
        bounds_list: list[float] = []
        for h in metric.histogram.data_points:
            explicit = h.explicit_bounds
            if explicit != bounds_list:
                bounds_list = list(explicit)
                bounds = tuple(bounds_list)
            yield Point(
                name,
                PointKind.HISTOGRAM,
                h.time_unix_nano,
                h.start_time_unix_nano,
                unit,
                temporality,
                False,
                resource,
                scope,
                version,
                _attributes(h.attributes, known),
                count=h.count,
                total=h.sum if h.HasField("sum") else None,
                bounds=bounds,
                buckets=tuple(h.bucket_counts),
                max=h.max if h.HasField("max") else None,
                no_value=bool(h.flags & _NO_RECORDED_VALUE),
            )
    elif data == "exponential_histogram":
        temporality = _temporality(metric.exponential_histogram.aggregation_temporality)
        for e in metric.exponential_histogram.data_points:
            exponential_bounds, buckets = _exponential_bounds(e)
            yield Point(
                name,
                PointKind.HISTOGRAM,
                e.time_unix_nano,
                e.start_time_unix_nano,
                unit,
                temporality,
                False,
                resource,
                scope,
                version,
                _attributes(e.attributes, known),
                count=e.count,
                total=e.sum if e.HasField("sum") else None,
                bounds=exponential_bounds,
                buckets=buckets,
                max=e.max if e.HasField("max") else None,
                no_value=bool(e.flags & _NO_RECORDED_VALUE),
            )
    elif data == "summary":
        for s in metric.summary.data_points:
            yield Point(
                name,
                PointKind.SUMMARY,
                s.time_unix_nano,
                s.start_time_unix_nano,
                unit,
                Temporality.UNSPECIFIED,
                False,
                resource,
                scope,
                version,
                _attributes(s.attributes, known),
            )


# -- the route ----------------------------------------------------------------------------------


def build_otlp_router(deps: OtlpDeps) -> APIRouter:
    """Return the router for OTLP/HTTP's /v1/metrics."""
    router = APIRouter(
        tags=["telemetry (OTLP)"],
        # the first dependency, so that even a refused size or credential answers in OTLP's shape
        dependencies=[Depends(answers_in(otlp_answer))],
    )
    gate = TokenGate(
        max_body_bytes=deps.max_body_bytes, policy=deps.policy, global_token=deps.global_token
    )
    counted = deps.metrics.otlp_points

    # OTLP/HTTP is specified by OpenTelemetry, not by this document: the route is left out of it
    @router.post("/v1/metrics", include_in_schema=False)
    async def metrics(
        request: Request,
        _caller: Annotated[Caller, Depends(gate.caller(Scope.TELEMETRY))],
        body: Annotated[bytes, Depends(gate.body)],
    ) -> Response:
        """Count an export of OTLP metrics into the watched history."""
        media_type = _media_type(request)
        if media_type not in (PROTOBUF, JSON):
            raise Unsupported(
                f"content type {media_type or '(none)'!r} is not {PROTOBUF} or {JSON}"
            )
        encoding = request.headers.get("content-encoding", "").strip().lower()
        export = _decoded(_inflated(body, encoding, deps.max_body_bytes), media_type)
        outcome = await deps.intake.record(list(points_of(export)))
        for label, value in (
            ("kept", outcome.kept),
            ("unknown_metric", outcome.unknown),
            ("rejected", outcome.rejected),
        ):
            if value:
                counted.labels(label).inc(value)
        answer = ExportMetricsServiceResponse()
        if outcome.rejected:
            answer.partial_success.rejected_data_points = outcome.rejected
            answer.partial_success.error_message = outcome.message
        if media_type == JSON:
            return JSONResponse(json_format.MessageToDict(answer))
        return Response(answer.SerializeToString(), media_type=PROTOBUF)

    return router
