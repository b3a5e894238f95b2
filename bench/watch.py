"""Watch benchmark: runs and OTLP metrics ingest throughput, and `watch` over 35 days of history.

    .venv/bin/python bench/watch.py --mode runs  [--database sqlite|postgres] [--senders 16]
    .venv/bin/python bench/watch.py --mode otlp  [--database sqlite|postgres]
    .venv/bin/python bench/watch.py --mode watch [--database sqlite|postgres]

`runs` and `otlp` start the bot as a user runs it (`python -m bot.cli serve`, local mode, a
fresh database) and load it with batches of 500 runs per request (`POST /webhooks/runs`, JSON)
or 500 runs' worth of GenAI metric points per request (`POST /v1/metrics`, OTLP protobuf) from
closed-loop senders on keep-alive connections, then kill it with SIGKILL and check that the
runs in `watch_minute` are exactly the runs the 2xx answers accepted. `watch` fills a fresh
database with 20 workflows x 35 days of minute history (and the hour rows, versions and seen
keys that go with it), then measures its size on disk and the time of the `watch` figures.

See bench/README.md ("Watch benchmark") for what the numbers mean and what they do not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import struct
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ingest  # noqa: E402  (bench/ingest.py: server, databases, CPU accounting)

RESULTS = ingest.RESULTS
RUNS_PATH = "/webhooks/runs"
OTLP_PATH = "/v1/metrics"
RUNS_PER_REQUEST = 500
TARGET_RUNS_PER_S = 20_000.0
TARGET_WATCH_MS = 300.0
TARGET_DISK_MB = 300.0

# 20 workflows: the example policy's five and fifteen more an AI team might run
WORKFLOWS: tuple[str, ...] = (
    "email-summarizer", "support-chatbot", "proposal-writer", "code-review-assistant",
    "weekly-report", "invoice-extractor", "lead-scorer", "meeting-notes", "ticket-triage",
    "contract-reviewer", "sql-assistant", "translation-pipeline", "churn-predictor",
    "resume-screener", "faq-bot", "product-descriptions", "sentiment-monitor",
    "onboarding-agent", "data-cleaner", "release-notes",
)  # fmt: skip
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-haiku", "claude-3-5-sonnet", "gemini-1.5-flash")
ERRORS = (
    "provider returned 429: rate limit exceeded",
    "provider returned 500: internal error",
    "output failed schema validation",
    "context length exceeded",
)
# the GenAI semantic conventions' advised histogram boundaries
DURATION_BOUNDS_S = tuple(0.01 * 2**i for i in range(14))
TOKEN_BOUNDS = tuple(float(4**i) for i in range(14))


# -- traffic: pre-serialised bodies --------------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    """One run of a batch, as the generator draws it."""

    workflow: str
    status: str
    latency_ms: float
    tokens_in: int
    tokens_out: int
    cost_usd: float
    confidence: float
    handed_off: bool
    model: str
    prompt_version: str
    error: str | None


def draw_runs(n: int, seed: int) -> list[RunSpec]:
    """Return `n` runs spread evenly over the 20 workflows, mostly ok, some failing."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        w = i % len(WORKFLOWS)
        status = rng.choices(("ok", "error", "timeout", "refusal"), (93, 4, 2, 1))[0]
        tokens_in = int(rng.lognormvariate(6.5, 0.6))
        tokens_out = int(rng.lognormvariate(5.3, 0.7))
        out.append(
            RunSpec(
                workflow=WORKFLOWS[w],
                status=status,
                latency_ms=round(
                    30_000.0 if status == "timeout" else rng.lognormvariate(7.2, 0.5), 1
                ),
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                cost_usd=round(tokens_in * 1.5e-7 + tokens_out * 6e-7, 6),
                confidence=round(min(1.0, max(0.0, rng.gauss(0.82, 0.1))), 3),
                handed_off=rng.random() < 0.03,
                model=MODELS[(w + (i // len(WORKFLOWS)) % 2) % len(MODELS)],
                prompt_version=f"v{3 + w % 3}",
                error=rng.choice(ERRORS) if status in ("error", "timeout") else None,
            )
        )
    return out


_RUNS_SLOT = re.compile(rb"@@(R\d+|T)@@")


@dataclass(frozen=True)
class RunsTemplate:
    """A batch of runs as JSON; `render` fills in fresh run_ids and the time of sending."""

    parts: tuple[bytes, ...]
    slots: tuple[int, ...]  # -1: the time; else the run whose id goes there

    @classmethod
    def build(cls, runs: list[RunSpec]) -> RunsTemplate:
        items = []
        for i, r in enumerate(runs):
            item: dict[str, Any] = {
                "workflow": r.workflow,
                "run_id": f"@@R{i}@@",
                "at": "@@T@@",
                "status": r.status,
                "latency_ms": r.latency_ms,
                "tokens_in": r.tokens_in,
                "tokens_out": r.tokens_out,
                "cost_usd": r.cost_usd,
                "confidence": r.confidence,
                "handed_off": r.handed_off,
                "model": r.model,
                "prompt_version": r.prompt_version,
            }
            if r.error:
                item["error"] = r.error
            items.append(item)
        raw = json.dumps({"runs": items}, separators=(",", ":")).encode()
        pieces = _RUNS_SLOT.split(raw)
        slots = tuple(-1 if s == b"T" else int(s[1:]) for s in pieces[1::2])
        return cls(parts=tuple(pieces[0::2]), slots=slots)

    def render(self, uid_base: int, now: float) -> bytes:
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)).encode() + b".%03dZ" % int(
            now % 1 * 1000
        )
        out = [self.parts[0]]
        for slot, part in zip(self.slots, self.parts[1:], strict=True):
            out.append(at if slot < 0 else b"%016x" % (uid_base + slot))
            out.append(part)
        return b"".join(out)


def uid_base(sender: int, seq: int) -> int:
    """Run id base of a sender's seq-th batch: unique in a run."""
    return (sender << 48) | (seq << 10)


# sentinels the OTLP template's timestamps start from; their fixed64 bytes are found and patched
_SENTINEL_TIME = 0x7A5C_3E00_0000_0000
_SENTINEL_START = 0x7A5C_3F00_0000_0000
_WINDOW_NS = 1_000_000  # each delta point covers 1 ms
# the fixed64 (little-endian) bytes of either sentinel plus an index below 65,536
_SENTINEL_BYTES = re.compile(rb"(?s)..\x00\x00\x00[\x3e\x3f]\x5c\x7a")


def _bucket_counts(bounds: tuple[float, ...], value: float) -> list[int]:
    counts = [0] * (len(bounds) + 1)
    for i, bound in enumerate(bounds):
        if value <= bound:
            counts[i] = 1
            return counts
    counts[-1] = 1
    return counts


def _otlp_attrs(pairs: list[tuple[str, str]]) -> list[Any]:
    from opentelemetry.proto.common.v1 import common_pb2

    return [common_pb2.KeyValue(key=k, value=common_pb2.AnyValue(string_value=v)) for k, v in pairs]


def _workflow_metrics(request: Any, workflow: str) -> tuple[Any, Any]:
    """Add one workflow's resource to an export; return its DELTA duration and token metrics."""
    from opentelemetry.proto.metrics.v1 import metrics_pb2 as m

    rm = request.resource_metrics.add()
    rm.resource.attributes.extend(
        _otlp_attrs([("service.name", workflow), ("telemetry.sdk.language", "python")])
    )
    sm = rm.scope_metrics.add()
    sm.scope.name = "opentelemetry.instrumentation.openai_v2"
    sm.scope.version = "2.1b0"
    duration = sm.metrics.add(name="gen_ai.client.operation.duration", unit="s")
    duration.histogram.aggregation_temporality = m.AGGREGATION_TEMPORALITY_DELTA
    tokens = sm.metrics.add(name="gen_ai.client.token.usage", unit="{token}")
    tokens.histogram.aggregation_temporality = m.AGGREGATION_TEMPORALITY_DELTA
    return duration, tokens


def otlp_request(runs: list[RunSpec], *, aggregated: bool = False) -> Any:
    """Return an ExportMetricsServiceRequest with the runs' duration and token usage points.

    One resource per workflow (`service.name`), DELTA histograms. One-call (the default): count
    1 per run, run i's points at time = _SENTINEL_TIME + i and start = _SENTINEL_START + i, to
    be patched. Aggregated (what an SDK's periodic reader sends): per workflow one duration
    point per (model, error.type) and one token point per (model, token type), their counts
    adding up to the runs; point j at the sentinels + j.
    """
    if aggregated:
        return _aggregated_request(runs)
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as svc

    request = svc.ExportMetricsServiceRequest()
    by_workflow: dict[str, list[tuple[int, RunSpec]]] = {}
    for i, r in enumerate(runs):
        by_workflow.setdefault(r.workflow, []).append((i, r))
    for workflow, items in by_workflow.items():
        duration, tokens = _workflow_metrics(request, workflow)
        for i, r in items:
            common = [
                ("gen_ai.operation.name", "chat"),
                ("gen_ai.system", "openai"),
                ("gen_ai.request.model", r.model),
            ]
            seconds = r.latency_ms / 1000
            errored = (
                [("error.type", "timeout" if r.status == "timeout" else "http_500")]
                if r.status in ("error", "timeout")
                else []
            )
            duration.histogram.data_points.add(
                attributes=_otlp_attrs(common + errored),
                start_time_unix_nano=_SENTINEL_START + i,
                time_unix_nano=_SENTINEL_TIME + i,
                count=1,
                sum=seconds,
                min=seconds,
                max=seconds,
                explicit_bounds=DURATION_BOUNDS_S,
                bucket_counts=_bucket_counts(DURATION_BOUNDS_S, seconds),
            )
            for kind, n in (("input", r.tokens_in), ("output", r.tokens_out)):
                tokens.histogram.data_points.add(
                    attributes=_otlp_attrs([*common, ("gen_ai.token.type", kind)]),
                    start_time_unix_nano=_SENTINEL_START + i,
                    time_unix_nano=_SENTINEL_TIME + i,
                    count=1,
                    sum=float(n),
                    min=float(n),
                    max=float(n),
                    explicit_bounds=TOKEN_BOUNDS,
                    bucket_counts=_bucket_counts(TOKEN_BOUNDS, float(n)),
                )
    return request


def _aggregated_request(runs: list[RunSpec]) -> Any:
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as svc

    def histogram(values: list[float], bounds: tuple[float, ...]) -> dict[str, Any]:
        counts = [0] * (len(bounds) + 1)
        for value in values:
            for index, c in enumerate(_bucket_counts(bounds, value)):
                counts[index] += c
        return {
            "count": len(values),
            "sum": float(sum(values)),
            "min": float(min(values)),
            "max": float(max(values)),
            "explicit_bounds": bounds,
            "bucket_counts": counts,
        }

    request = svc.ExportMetricsServiceRequest()
    point = 0
    by_workflow: dict[str, list[RunSpec]] = {}
    for r in runs:
        by_workflow.setdefault(r.workflow, []).append(r)
    for workflow, items in by_workflow.items():
        duration, tokens = _workflow_metrics(request, workflow)
        calls: dict[tuple[str, str | None], list[float]] = {}
        used: dict[tuple[str, str], list[float]] = {}
        for r in items:
            error = {"error": "http_500", "timeout": "timeout"}.get(r.status)
            calls.setdefault((r.model, error), []).append(r.latency_ms / 1000)
            used.setdefault((r.model, "input"), []).append(float(r.tokens_in))
            used.setdefault((r.model, "output"), []).append(float(r.tokens_out))
        for (model, error), seconds in sorted(calls.items(), key=str):
            common = [("gen_ai.operation.name", "chat"), ("gen_ai.request.model", model)]
            duration.histogram.data_points.add(
                attributes=_otlp_attrs(common + ([("error.type", error)] if error else [])),
                start_time_unix_nano=_SENTINEL_START + point,
                time_unix_nano=_SENTINEL_TIME + point,
                **histogram(seconds, DURATION_BOUNDS_S),
            )
            point += 1
        for (model, kind), counts in sorted(used.items()):
            tokens.histogram.data_points.add(
                attributes=_otlp_attrs(
                    [
                        ("gen_ai.operation.name", "chat"),
                        ("gen_ai.request.model", model),
                        ("gen_ai.token.type", kind),
                    ]
                ),
                start_time_unix_nano=_SENTINEL_START + point,
                time_unix_nano=_SENTINEL_TIME + point,
                **histogram(counts, TOKEN_BOUNDS),
            )
            point += 1
    return request


@dataclass(frozen=True)
class OtlpTemplate:
    """A serialised export whose fixed64 timestamps are patched per request."""

    body: bytes
    # (byte offset, run index, is start) of every timestamp
    offsets: tuple[tuple[int, int, bool], ...]

    @classmethod
    def build(cls, runs: list[RunSpec], *, aggregated: bool = False) -> OtlpTemplate:
        body = otlp_request(runs, aggregated=aggregated).SerializeToString()
        offsets = []
        for found in _SENTINEL_BYTES.finditer(body):
            index = struct.unpack("<Q", found.group())[0]
            is_start = index >= _SENTINEL_START
            offsets.append(
                (found.start(), index - (_SENTINEL_START if is_start else _SENTINEL_TIME), is_start)
            )
        offsets.sort()
        # start and time of one duration and two token points per run, or per aggregate point
        expected = 2 * (1 + max(i for _, i, _ in offsets)) if aggregated else 2 * 3 * len(runs)
        if len(offsets) != expected:
            raise RuntimeError(f"found {len(offsets)} timestamps in the template, not {expected}")
        return cls(body=body, offsets=tuple(offsets))

    def render(self, now_ns: int) -> bytes:
        """Return the export with run i's points ending at now_ns - (runs - i) µs."""
        buf = bytearray(self.body)
        n = 1 + max(i for _, i, _ in self.offsets)
        pack = struct.pack_into
        for offset, i, is_start in self.offsets:
            end = now_ns - (n - i) * 1000
            pack("<Q", buf, offset, end - _WINDOW_NS if is_start else end)
        return bytes(buf)


# -- load generator (a child process) ------------------------------------------------------------


@dataclass
class LoadConfig:
    host: str
    port: int
    token: str
    mode: str  # runs | otlp
    aggregated: bool  # otlp: SDK-shaped aggregate points instead of one point per call
    senders: int
    warmup: float
    seconds: float
    timeout: float


@dataclass
class LoadStats:
    t_measure: float = 0.0
    t_end: float = 0.0
    answered_2xx: int = 0  # over warm-up, measurement and drain
    runs_accepted: int = 0  # what the 2xx answers say was kept: the bot must have stored it
    runs_unanswered: int = 0  # sent, then a timeout or a broken connection: maybe stored
    points_rejected: int = 0  # OTLP partial success
    ok: int = 0  # 2xx answers inside the measurement window
    errors: int = 0
    error_kinds: Counter[str] = field(default_factory=Counter)
    latencies: array[float] = field(default_factory=lambda: array("d"))
    slices: list[int] = field(default_factory=list)
    cpu_s: float = 0.0
    render_s: float = 0.0  # client CPU spent rendering bodies (whole run)
    body_bytes: int = 0


def _accepted(mode: str, body: bytes) -> tuple[int, int]:
    """Return (runs accepted, OTLP points rejected) from a 2xx answer."""
    if mode == "runs":
        return int(json.loads(body)["accepted"]), 0
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as svc

    answer = svc.ExportMetricsServiceResponse.FromString(body)
    rejected = answer.partial_success.rejected_data_points
    # a rejected point may be a duration (a run) or a token point: exact only when none is
    return RUNS_PER_REQUEST, rejected


async def _sender(
    cfg: LoadConfig, sender: int, render: Callable[[int, int], bytes], st: LoadStats, start: float
) -> None:
    path = RUNS_PATH if cfg.mode == "runs" else OTLP_PATH
    kind = "application/json" if cfg.mode == "runs" else "application/x-protobuf"
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {cfg.host}:{cfg.port}\r\n"
        f"user-agent: watch-bench/1\r\ncontent-type: {kind}\r\n"
        f"authorization: Bearer {cfg.token}\r\ncontent-length: "
    ).encode()
    reader, writer = await asyncio.open_connection(cfg.host, cfg.port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    seq = 0
    while time.monotonic() < st.t_end:
        c0 = time.process_time()
        body = render(sender, seq)
        st.render_s += time.process_time() - c0
        st.body_bytes = len(body)
        seq += 1
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(cfg.timeout):
                writer.write(head + b"%d\r\n\r\n" % len(body) + body)
                status, close, answer = await ingest.read_answer(reader)
        except (OSError, EOFError, TimeoutError, ValueError) as exc:
            st.runs_unanswered += RUNS_PER_REQUEST
            if st.t_measure <= time.monotonic() <= st.t_end:
                st.errors += 1
                st.error_kinds[type(exc).__name__] += 1
            writer.close()
            try:
                reader, writer = await asyncio.open_connection(cfg.host, cfg.port)
            except OSError:
                await asyncio.sleep(0.05)
            continue
        t1 = time.monotonic()
        inside = st.t_measure <= t1 <= st.t_end
        if 200 <= status < 300:
            accepted, rejected = _accepted(cfg.mode, answer)
            st.answered_2xx += 1
            st.runs_accepted += accepted
            st.points_rejected += rejected
            if inside:
                st.ok += 1
                st.latencies.append(t1 - t0)
                second = int(t1 - st.t_measure)
                if second < len(st.slices):
                    st.slices[second] += 1
        elif inside:
            st.errors += 1
            st.error_kinds[f"HTTP {status}"] += 1
        if close:
            writer.close()
            reader, writer = await asyncio.open_connection(cfg.host, cfg.port)
    writer.close()


async def _load(cfg: LoadConfig, start: float) -> LoadStats:
    st = LoadStats(t_measure=start + cfg.warmup, t_end=start + cfg.warmup + cfg.seconds)
    st.slices = [0] * math.ceil(cfg.seconds)
    runs = draw_runs(RUNS_PER_REQUEST, seed=13)
    render: Callable[[int, int], bytes]
    if cfg.mode == "runs":
        tpl = RunsTemplate.build(runs)

        def render(sender: int, seq: int) -> bytes:
            return tpl.render(uid_base(sender, seq), time.time())

    else:
        otlp = OtlpTemplate.build(runs, aggregated=cfg.aggregated)
        last = [0]

        def render(sender: int, seq: int) -> bytes:
            # every request's points end later than the previous request's: no point repeats
            now = max(time.time_ns(), last[0] + (RUNS_PER_REQUEST + 1) * 1000)
            last[0] = now
            return otlp.render(now)

    async def cpu_probe() -> None:
        await asyncio.sleep(max(0.0, st.t_measure - time.monotonic()))
        before = time.process_time()
        await asyncio.sleep(max(0.0, st.t_end - time.monotonic()))
        st.cpu_s = time.process_time() - before

    probe = asyncio.create_task(cpu_probe())
    await asyncio.gather(*(_sender(cfg, s, render, st, start) for s in range(cfg.senders)))
    await probe
    return st


def _load_main(cfg: LoadConfig, conn: Connection) -> None:
    conn.send("ready")
    start = conn.recv()
    try:
        import uvloop

        st = uvloop.run(_load(cfg, start))
    except ImportError:
        st = asyncio.run(_load(cfg, start))
    conn.send(st)
    conn.close()


# -- throughput ----------------------------------------------------------------------------------


def stored_runs(url: str) -> dict[str, int]:
    """Sum what the bot stored: runs in minute and hour rows, seen keys, minute rows."""
    queries = {
        "runs_in_minutes": "SELECT coalesce(sum(runs), 0) FROM watch_minute",
        "runs_in_hours": "SELECT coalesce(sum(runs), 0) FROM watch_hour",
        "minute_rows": "SELECT count(*) FROM watch_minute",
        "seen_keys": "SELECT count(*) FROM watch_seen",
    }
    out: dict[str, int] = {}
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            for key, q in queries.items():
                out[key] = int(conn.execute(q).fetchone()[0])
        finally:
            conn.close()
        return out
    import psycopg

    with psycopg.connect(url) as pg:
        for key, q in queries.items():
            row = pg.execute(q).fetchone()
            out[key] = int(row[0]) if row else 0
    return out


def prefill_seen(url: str, count: int) -> None:
    """Migrate the database and fill `watch_seen` with `count` random keys spread over the
    last 35 days: the index of run ids a busy history holds, which every new run's claim then
    inserts into."""
    from storage.db import create_db_engine, migrate

    engine = create_db_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    rng = random.Random(7)
    now = int(time.time() // 60)
    span = 35 * 1440
    keys = sorted({rng.getrandbits(64) - 2**63 for _ in range(count)})
    rows = [(key, now - span + rng.randrange(span)) for key in keys]
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            conn.executemany("INSERT INTO watch_seen (key, minute) VALUES (?, ?)", rows)
            conn.commit()
        finally:
            conn.close()
        return
    import psycopg

    with (
        psycopg.connect(url) as pg,
        pg.cursor() as cur,
        cur.copy("COPY watch_seen (key, minute) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def throughput(args: argparse.Namespace) -> int:
    cpus = os.cpu_count() or 1
    token = secrets.token_urlsafe(24)
    workdir = Path(tempfile.mkdtemp(prefix="ai-incident-watch-bench-"))
    runs = draw_runs(RUNS_PER_REQUEST, seed=13)
    sample = (
        RunsTemplate.build(runs).render(0, time.time())
        if args.mode == "runs"
        else OtlpTemplate.build(runs, aggregated=args.otlp_shape == "aggregated").render(
            time.time_ns()
        )
    )
    path = RUNS_PATH if args.mode == "runs" else OTLP_PATH
    shape = f", {args.otlp_shape} points" if args.mode == "otlp" else ""
    print(
        f"watch ingest benchmark: POST {path}, {RUNS_PER_REQUEST} runs per request "
        f"({len(sample):,} bytes{shape}), {len(WORKFLOWS)} workflows, every run new"
    )
    print(
        f"{args.senders} closed-loop senders on keep-alive connections; {args.warmup:g} s warm-up"
        f" + {args.seconds:g} s measured; database: {args.database}; {cpus} CPU(s)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    durability: dict[str, Any] = {}
    try:
        with ingest.database(args.database, workdir) as url:
            policy = workdir / "ai-incident.yml"
            shutil.copyfile(ingest.EXAMPLE_POLICY, policy)
            if args.seen_keys:
                print(f"filling watch_seen with {args.seen_keys:,} keys ...", flush=True)
                prefill_seen(url, args.seen_keys)
            bot_env = {
                **env,
                "DATABASE_URL": url,
                "AI_INCIDENT_CONFIG": str(policy),
                "AI_INCIDENT_WEBHOOK_TOKEN": token,
            }
            argv = [sys.executable, "-m", "bot.cli", "serve"]
            if args.profile:
                argv = [
                    sys.executable,
                    str(ROOT / "bench" / "profiled_serve.py"),
                    str(workdir / "bot.prof"),
                    "serve",
                ]
            bot = ingest.Server("bot", argv, bot_env, workdir)
            with bot:
                print(f"bot ready on :{bot.port} (pid {bot.pid}); loading ...", flush=True)
                backends = (
                    (lambda: ingest.pg_backends(url)) if args.database == "postgres" else None
                )
                result = _run_load(args, bot, token, backends)
                if args.profile:
                    # SIGINT: uvicorn stops, then raises it again as KeyboardInterrupt, and
                    # the profiler writes its file (that takes a while); no durability check
                    assert bot.proc is not None
                    bot.proc.send_signal(signal.SIGINT)
                    bot.proc.wait(300)
                else:
                    bot.kill()  # like a crash: what a 2xx acknowledged must be stored
                stored = stored_runs(url)
            durability = {
                "runs_in_2xx_answers": result["runs_accepted_total"],
                "requests_answered_2xx": result["answered_2xx_total"],
                "runs_in_unanswered_requests": result["runs_unanswered_total"],
                "otlp_points_rejected": result["points_rejected_total"],
                **stored,
            }
            acked, maybe = result["runs_accepted_total"], result["runs_unanswered_total"]
            durability["ok"] = (
                acked <= stored["runs_in_minutes"] <= acked + maybe
                and stored["runs_in_minutes"] == stored["runs_in_hours"]
                and result["points_rejected_total"] == 0
            )
    except RuntimeError as exc:
        print(f"\nbenchmark aborted: {exc}", file=sys.stderr)
        print(f"work directory kept: {workdir}", file=sys.stderr)
        return 2

    r = result
    print()
    print(f"{'runs/s':>10}{'requests/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}")
    print(
        f"{r['runs_per_s']:>10,.0f}{r['requests_per_s']:>12,.1f}{r['p50_ms']:>9.1f}"
        f"{r['p99_ms']:>9.1f}{r['max_ms']:>9.1f}{r['errors']:>8}"
    )
    db = "in-proc" if args.database == "sqlite" else f"{r['db_cpu_cores'] or 0:.2f}"
    print(f"\nCPU cores used while measuring (the machine has {cpus}):")
    print(f"{'server':>9}{'database':>10}{'loadgen':>9}{'irq':>7}{'other':>8}{'busy':>8}")
    print(
        f"{r['server_cpu_cores']:>9.2f}{db:>10}{r['generator_cpu_cores']:>9.2f}"
        f"{r['irq_cpu_cores']:>7.2f}{r['other_cpu_cores']:>8.2f}{r['machine_busy'] * 100:>7.0f}%"
    )
    slices = r["runs_per_s_by_second"]
    step = max(1, len(slices) // 10)
    shown = [
        sum(slices[i : i + step]) / len(slices[i : i + step]) for i in range(0, len(slices), step)
    ]
    print(f"\nruns/s per {step} s: " + " ".join(f"{v:,.0f}" for v in shown))
    print(
        f"bot: {r['server_cpu_ms_per_request']:.1f} ms of CPU per request, "
        f"{r['runs_per_server_cpu_s']:,.0f} runs per CPU second of the bot's process; "
        f"client: {r['render_us_per_request']:.0f} µs of CPU to render a body"
    )
    if r["error_kinds"]:
        print(f"errors: {r['error_kinds']}")
    if r["other_cpu_cores"] > ingest.NOISY_CORES:
        print(
            f"WARNING: other processes used {r['other_cpu_cores']:.2f} cores while measuring; "
            "the numbers are low by an unknown amount"
        )
    checks: dict[str, bool] = {
        f"runs/s >= {TARGET_RUNS_PER_S:,.0f}": r["runs_per_s"] >= TARGET_RUNS_PER_S,
        "every request answered 2xx": r["errors"] == 0,
    }
    if not args.profile:
        d = durability
        maybe = d["runs_in_unanswered_requests"]
        rejected = d["otlp_points_rejected"]
        extra = (f", {maybe:,} more in unanswered requests" if maybe else "") + (
            f", {rejected:,} OTLP points rejected" if rejected else ""
        )
        print(
            f"\ndurability: {d['runs_in_2xx_answers']:,} runs accepted in 2xx answers "
            f"({d['requests_answered_2xx']:,} requests incl. warm-up{extra}), "
            f"sum(runs) after SIGKILL: {d['runs_in_minutes']:,} in watch_minute, "
            f"{d['runs_in_hours']:,} in watch_hour; {d['minute_rows']:,} minute rows, "
            f"{d['seen_keys']:,} seen keys -> {'OK' if d['ok'] else 'MISMATCH'}"
        )
        checks["durability: sum(runs) == runs accepted in 2xx answers"] = d["ok"]
    else:
        print(f"\nprofile: {workdir / 'bot.prof'} (python -m pstats)")
    return _verdict(
        args, checks, {"result": r, "durability": durability}, workdir, keep=args.profile
    )


def _run_load(
    args: argparse.Namespace,
    bot: ingest.Server,
    token: str,
    db_pids: Callable[[], list[int]] | None,
) -> dict[str, Any]:
    cfg = LoadConfig(
        host="127.0.0.1",
        port=bot.port,
        token=token,
        mode=args.mode,
        aggregated=args.otlp_shape == "aggregated",
        senders=args.senders,
        warmup=args.warmup,
        seconds=args.seconds,
        timeout=args.timeout,
    )
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_load_main, args=(cfg, child), name="loadgen", daemon=True)
    proc.start()
    child.close()
    if not parent.poll(60) or parent.recv() != "ready":
        raise RuntimeError("the load generator did not start")
    start = time.monotonic() + 0.5
    parent.send(start)
    t_measure, t_end = start + args.warmup, start + args.warmup + args.seconds
    time.sleep(max(0.0, t_measure - time.monotonic()))
    backends = db_pids() if db_pids else []
    cpu0, busy0 = [ingest._proc_cpu_s(p) for p in [bot.pid, *backends]], ingest._machine_busy()
    time.sleep(max(0.0, t_end - time.monotonic()))
    cpu1, busy1 = [ingest._proc_cpu_s(p) for p in [bot.pid, *backends]], ingest._machine_busy()
    if not parent.poll(args.timeout + 60):
        raise RuntimeError("the load generator did not report")
    st: LoadStats = parent.recv()
    proc.join(10)
    if not bot.alive():
        raise RuntimeError(f"the bot died during the run:\n{bot.tail()}")
    latencies = sorted(st.latencies)
    server_cpu = (cpu1[0] - cpu0[0]) / args.seconds
    db_cpu = (
        sum(b - a for a, b in zip(cpu0[1:], cpu1[1:], strict=True) if not math.isnan(b - a))
        / args.seconds
        if db_pids
        else None
    )
    gen_cpu = st.cpu_s / args.seconds
    cores = os.cpu_count() or 1
    machine = ingest._share(busy1[0] - busy0[0], busy1[1] - busy0[1])
    irq = ingest._share(busy1[2] - busy0[2], busy1[1] - busy0[1]) * cores
    other = machine * cores - server_cpu - (db_cpu or 0.0) - gen_cpu - irq
    sent = max(1, st.answered_2xx + st.runs_unanswered // RUNS_PER_REQUEST)

    def ms(q: float) -> float:
        return ingest._percentile(latencies, q) * 1000

    return {
        "mode": args.mode,
        "otlp_shape": args.otlp_shape if args.mode == "otlp" else None,
        "database": args.database,
        "senders": args.senders,
        "seconds": args.seconds,
        "requests": st.ok,
        "requests_per_s": st.ok / args.seconds,
        "runs_per_s": st.ok * RUNS_PER_REQUEST / args.seconds,
        "p50_ms": ms(0.50),
        "p90_ms": ms(0.90),
        "p99_ms": ms(0.99),
        "max_ms": latencies[-1] * 1000 if latencies else math.nan,
        "errors": st.errors,
        "error_kinds": dict(st.error_kinds),
        "answered_2xx_total": st.answered_2xx,
        "runs_accepted_total": st.runs_accepted,
        "runs_unanswered_total": st.runs_unanswered,
        "points_rejected_total": st.points_rejected,
        "server_cpu_cores": server_cpu,
        "db_cpu_cores": db_cpu,
        "generator_cpu_cores": gen_cpu,
        "irq_cpu_cores": irq,
        "other_cpu_cores": other,
        "machine_busy": machine,
        "runs_per_s_by_second": [n * RUNS_PER_REQUEST for n in st.slices],
        "render_us_per_request": st.render_s / sent * 1e6,
        # what one core of the bot's process takes: comparable when other processes compete
        "runs_per_server_cpu_s": st.ok * RUNS_PER_REQUEST / args.seconds / server_cpu
        if server_cpu > 0
        else math.nan,
        "server_cpu_ms_per_request": server_cpu * args.seconds / st.ok * 1000
        if st.ok
        else math.nan,
        "body_bytes": st.body_bytes,
    }


def _verdict(
    args: argparse.Namespace,
    checks: dict[str, bool],
    record: dict[str, Any],
    workdir: Path,
    *,
    keep: bool = False,
) -> int:
    print()
    for name, ok in checks.items():
        print(f"  {'pass' if ok else 'FAIL'}  {name}")
    failed = [n for n, ok in checks.items() if not ok]
    print("PASS" if not failed else "FAIL: " + "; ".join(failed))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = "-aggregated" if args.mode == "otlp" and args.otlp_shape == "aggregated" else ""
    out = RESULTS / f"watch-{args.mode}{suffix}-{args.database}-{stamp}.json"
    full = {
        "benchmark": f"watch-{args.mode}",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": ingest._git_commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "config": dict(vars(args)),
        **record,
        "checks": checks,
        "pass": not failed,
    }
    out.write_text(json.dumps(full, indent=2, default=str) + "\n")
    print(f"\nresult file: {out.relative_to(ROOT)}")
    if args.keep or keep:
        print(f"work directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if not failed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Watch ingest throughput, watch latency and disk.")
    parser.add_argument(
        "--mode", choices=["runs", "otlp", "watch", "sections", "rules"], default="runs"
    )
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--otlp-shape",
        choices=["one-call", "aggregated"],
        default="one-call",
        help="otlp: one delta point per call (the worst case), or per workflow, model and "
        "error.type as an SDK's periodic reader aggregates them",
    )
    parser.add_argument("--senders", type=int, default=16, help="closed-loop senders")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout (s)")
    parser.add_argument("--days", type=int, default=35, help="watch: days of minute history")
    parser.add_argument("--repeats", type=int, default=20, help="watch: timed figure builds")
    parser.add_argument("--profile", action="store_true", help="runs/otlp: run the bot under yappi")
    parser.add_argument(
        "--seen-keys",
        type=int,
        default=0,
        help="runs/otlp: run ids already in the history's index before the load starts",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    if args.mode == "watch":
        import watch_fill

        return watch_fill.run(args)
    if args.mode == "rules":
        import watch_rules

        return watch_rules.run(args)
    if args.mode == "sections":
        import watch_sections

        watch_sections.run(args)
        return 0
    return throughput(args)


if __name__ == "__main__":
    sys.exit(main())
