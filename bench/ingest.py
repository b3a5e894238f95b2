"""Ingest benchmark: the bot's durable Alertmanager webhook against a bare ASGI endpoint.

    .venv/bin/python bench/ingest.py [--seconds 20] [--concurrency 16]
                                     [--alerts-per-notification 5] [--database sqlite|postgres]

One run starts a bare ASGI app (bench/bare_app.py) under uvicorn and loads it, then starts the
bot as a user runs it (`python -m bot.cli serve`, local mode, a fresh database, console output
to a file) and loads it with the same Alertmanager traffic for the same time. The load
generator runs in separate processes; each sender keeps one HTTP/1.1 keep-alive connection and
sends the next notification as soon as the previous one is answered (closed loop). Latency is
measured client-side per request. At the end the bot is killed with SIGKILL and the alerts in
its database are counted: every alert of a 2xx answer must be there.

See bench/README.md for what the numbers mean and what they do not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
EXAMPLE_POLICY = ROOT / "examples" / "ai-incident.example.yml"
PG_DSN = os.environ.get(
    "AI_INCIDENT_BENCH_PG",
    os.environ.get("AI_INCIDENT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
)
WEBHOOK = "/webhooks/alertmanager"

TARGET_ALERTS_PER_S = 1000.0
TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0

# 20 alert groups as an AI team's Prometheus would have them: alertname, workflow, severity, summary
GROUP_SPECS: list[tuple[str, str, str, str]] = [
    ("SummarizerErrorRate", "email-summarizer", "critical", "error rate above 20%"),
    ("SummarizerLatencyHigh", "email-summarizer", "warning", "p95 latency above 8s"),
    ("SummarizerCostSpike", "email-summarizer", "warning", "spend per run 2x baseline"),
    ("SummarizerRefusals", "email-summarizer", "warning", "refusal rate above 10%"),
    ("ChatbotErrorRate", "support-chatbot", "critical", "error rate above 20%"),
    ("ChatbotLatencyHigh", "support-chatbot", "warning", "p95 latency above 5s"),
    ("ChatbotTokenUsage", "support-chatbot", "warning", "tokens per answer 1.5x baseline"),
    ("ChatbotEscalations", "support-chatbot", "warning", "handoffs to humans doubled"),
    ("ProposalWriterErrors", "proposal-writer", "critical", "model calls failing"),
    ("ProposalWriterQueue", "proposal-writer", "warning", "queue older than 30m"),
    ("ProposalWriterCost", "proposal-writer", "warning", "daily spend 3x baseline"),
    ("ProposalWriterQuality", "proposal-writer", "info", "eval score dropped"),
    ("CodeReviewTimeouts", "code-review-assistant", "warning", "provider timeouts above 5%"),
    ("CodeReviewRateLimited", "code-review-assistant", "warning", "429s from the provider"),
    ("CodeReviewErrors", "code-review-assistant", "critical", "error rate above 20%"),
    ("CodeReviewBacklog", "code-review-assistant", "info", "review backlog growing"),
    ("WeeklyReportFailed", "weekly-report", "critical", "report run failed"),
    ("WeeklyReportSlow", "weekly-report", "warning", "run time 2x baseline"),
    ("WeeklyReportCost", "weekly-report", "warning", "spend per run 2x baseline"),
    ("WeeklyReportStale", "weekly-report", "info", "input data older than 24h"),
]

_SLOT = re.compile(rb"@@A(\d+)@@")


# -- traffic -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """A pre-serialised notification of one group; `render` fills in fresh fingerprints."""

    parts: tuple[bytes, ...]
    slots: tuple[int, ...]  # the alert index whose fingerprint goes between parts[k] and parts[k+1]

    def render(self, uid_base: int) -> bytes:
        out = [self.parts[0]]
        for slot, part in zip(self.slots, self.parts[1:], strict=True):
            out.append(b"%016x" % (uid_base + slot))
            out.append(part)
        return b"".join(out)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def notification(group: int, alerts: int, base: datetime) -> dict[str, Any]:
    """Return an Alertmanager v4 notification of `group` whose fingerprints are placeholders."""
    name, workflow, severity, summary = GROUP_SPECS[group % len(GROUP_SPECS)]
    if group >= len(GROUP_SPECS):
        name = f"{name}{group // len(GROUP_SPECS)}"
    common = {"alertname": name, "severity": severity, "workflow": workflow, "team": "ai-platform"}
    items = []
    for i in range(alerts):
        uid = f"@@A{i}@@"
        items.append(
            {
                "status": "firing",
                "labels": {**common, "instance": f"{workflow}-{uid}", "job": "ai-workflows"},
                "annotations": {
                    "summary": f"{workflow}: {summary}",
                    "description": f"{workflow} instance {uid}: {summary} for the last 10m",
                    "runbook_url": f"https://wiki.example.com/runbooks/{name}",
                },
                "startsAt": _iso(base - timedelta(seconds=41 * group + 7 * i, milliseconds=13 * i)),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": f"http://prometheus.local:9090/graph?g0.expr=ALERTS%7Balertname%3D%22{name}%22%7D",
                "fingerprint": uid,
            }
        )
    return {
        "receiver": "ai-incident",
        "status": "firing",
        "alerts": items,
        "groupLabels": {"alertname": name},
        "commonLabels": common,
        "commonAnnotations": {"summary": f"{workflow}: {summary}"},
        "externalURL": "http://alertmanager.local:9093",
        "version": "4",
        "groupKey": f'{{}}/{{severity=~"critical|warning|info"}}:{{alertname="{name}"}}',
        "truncatedAlerts": 0,
    }


def templates(groups: int, alerts: int, base: datetime) -> list[Template]:
    """Return one template per group."""
    out = []
    for g in range(groups):
        raw = json.dumps(notification(g, alerts, base), separators=(",", ":")).encode()
        pieces = _SLOT.split(raw)
        out.append(Template(parts=tuple(pieces[0::2]), slots=tuple(int(s) for s in pieces[1::2])))
    return out


def uid_base(sender: int, seq: int) -> int:
    """Fingerprint base of a sender's seq-th notification: unique in a run, same per target."""
    return (sender << 48) | (seq << 8)


# -- load generator (runs in child processes) ----------------------------------------------------


@dataclass
class WorkerConfig:
    index: int
    host: str
    port: int
    token: str
    senders: list[int]
    groups: int
    alerts: int
    base_time: str
    warmup: float
    seconds: float
    timeout: float
    client: str


@dataclass
class WorkerStats:
    t_measure: float = 0.0
    t_end: float = 0.0
    answered_2xx: int = 0  # over warm-up, measurement and drain: what the bot must have stored
    alerts_2xx: int = 0
    alerts_unanswered: int = 0  # sent, then a timeout or a broken connection: maybe stored
    sent: int = 0
    ok: int = 0  # 2xx answers completed inside the measurement window
    errors: int = 0
    error_kinds: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: array[float] = field(default_factory=lambda: array("d"))
    slices: list[int] = field(default_factory=list)  # 2xx completions per second of the window
    cpu_s: float = 0.0

    def record(self, t0: float, t1: float, status: int, alerts: int) -> None:
        self.sent += 1
        if 200 <= status < 300:
            self.answered_2xx += 1
            self.alerts_2xx += alerts
        if not self.t_measure <= t1 <= self.t_end:
            return
        self.statuses[status] += 1
        if 200 <= status < 300:
            self.ok += 1
            self.latencies.append(t1 - t0)
            second = int(t1 - self.t_measure)
            if second < len(self.slices):
                self.slices[second] += 1
        else:
            self.errors += 1
            self.error_kinds[f"HTTP {status}"] += 1

    def failed(self, t1: float, kind: str, alerts: int = 0) -> None:
        self.sent += 1
        self.alerts_unanswered += alerts
        if self.t_measure <= t1 <= self.t_end:
            self.errors += 1
            self.error_kinds[kind] += 1


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    status, close, _ = await read_answer(reader)
    return status, close


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """Read one HTTP/1.1 answer: its status, whether the server closes, its body."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length: int | None = None
    close = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
        elif name == b"transfer-encoding":
            raise ValueError("chunked answers are not supported by this client")
    if length is None:
        raise ValueError("answer without content-length")
    body = await reader.readexactly(length) if length else b""
    return status, close, body


async def _raw_sender(
    cfg: WorkerConfig, sender: int, tpl: list[Template], stats: WorkerStats, start: float
) -> None:
    """One Alertmanager: a keep-alive connection, the next request as soon as one is answered."""
    head = (
        f"POST {WEBHOOK} HTTP/1.1\r\nhost: {cfg.host}:{cfg.port}\r\n"
        f"user-agent: Alertmanager/0.27.0\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {cfg.token}\r\ncontent-length: "
    ).encode()
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None

    async def connect() -> None:
        nonlocal reader, writer
        reader, writer = await asyncio.open_connection(cfg.host, cfg.port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def drop() -> None:
        nonlocal reader, writer
        if writer is not None:
            writer.close()
        reader = writer = None

    await connect()
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    seq = 0
    while time.monotonic() < stats.t_end:
        if writer is None:
            try:
                await connect()
            except OSError as exc:
                stats.sent -= 1  # nothing was sent
                stats.failed(time.monotonic(), f"connect: {type(exc).__name__}")
                await asyncio.sleep(0.05)
                continue
        assert reader is not None and writer is not None
        body = tpl[(sender + seq) % cfg.groups].render(uid_base(sender, seq))
        seq += 1
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(cfg.timeout):
                writer.write(head + b"%d\r\n\r\n" % len(body) + body)
                status, close = await _read_response(reader)
        except (OSError, EOFError, TimeoutError, ValueError) as exc:
            stats.failed(time.monotonic(), type(exc).__name__, cfg.alerts)
            drop()
            continue
        stats.record(t0, time.monotonic(), status, cfg.alerts)
        if close:
            drop()
    drop()


async def _httpx_senders(
    cfg: WorkerConfig, tpl: list[Template], stats: WorkerStats, start: float
) -> None:
    import httpx

    headers = {
        "authorization": f"Bearer {cfg.token}",
        "content-type": "application/json",
        "user-agent": "Alertmanager/0.27.0",
    }
    limits = httpx.Limits(
        max_connections=len(cfg.senders), max_keepalive_connections=len(cfg.senders)
    )
    url = f"http://{cfg.host}:{cfg.port}{WEBHOOK}"
    async with httpx.AsyncClient(limits=limits, timeout=cfg.timeout) as client:

        async def one(sender: int) -> None:
            await asyncio.sleep(max(0.0, start - time.monotonic()))
            seq = 0
            while time.monotonic() < stats.t_end:
                body = tpl[(sender + seq) % cfg.groups].render(uid_base(sender, seq))
                seq += 1
                t0 = time.monotonic()
                try:
                    response = await client.post(url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    stats.failed(time.monotonic(), type(exc).__name__, cfg.alerts)
                    continue
                stats.record(t0, time.monotonic(), response.status_code, cfg.alerts)

        await asyncio.gather(*(one(s) for s in cfg.senders))


async def _cpu_probe(stats: WorkerStats) -> None:
    await asyncio.sleep(max(0.0, stats.t_measure - time.monotonic()))
    before, since = time.process_time(), time.monotonic()
    await asyncio.sleep(max(0.0, stats.t_end - time.monotonic()))
    # the loop may wake this task late: scale to the window
    window = stats.t_end - stats.t_measure
    stats.cpu_s = (time.process_time() - before) * window / max(time.monotonic() - since, window)


async def _load(cfg: WorkerConfig, tpl: list[Template], start: float) -> WorkerStats:
    stats = WorkerStats(t_measure=start + cfg.warmup, t_end=start + cfg.warmup + cfg.seconds)
    stats.slices = [0] * math.ceil(cfg.seconds)
    probe = asyncio.create_task(_cpu_probe(stats))
    if cfg.client == "httpx":
        await _httpx_senders(cfg, tpl, stats, start)
    else:
        await asyncio.gather(*(_raw_sender(cfg, s, tpl, stats, start) for s in cfg.senders))
    await probe
    return stats


def _worker_main(cfg: WorkerConfig, conn: Connection) -> None:
    """Child process: build the traffic, say ready, wait for the start time, load, report."""
    tpl = templates(cfg.groups, cfg.alerts, datetime.fromisoformat(cfg.base_time))
    conn.send("ready")
    start = conn.recv()
    try:
        import uvloop

        stats = uvloop.run(_load(cfg, tpl, start))
    except ImportError:
        stats = asyncio.run(_load(cfg, tpl, start))
    conn.send(stats)
    conn.close()


# -- servers and databases -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A server in a child process, its output in a file, ready when GET /readyz answers 200."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.argv = [*argv, "--port", str(self.port)]
        self.env = env
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Server:
        import httpx

        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200:
                    return self
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"{self.name} not ready in {timeout}s:\n{self.tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def output_lines(self) -> int:
        if not self.log_path.exists():
            return 0
        with self.log_path.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """Yield the URL of an empty database: a SQLite file, or a fresh PostgreSQL database."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    import psycopg

    name = f"aiinc_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_DSN.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_backends(url: str) -> list[int]:
    """Process ids of the PostgreSQL backends serving the bot's database (for their CPU time)."""
    import psycopg

    with psycopg.connect(PG_DSN) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (url.rsplit("/", 1)[1],)
        ).fetchall()
    return [int(r[0]) for r in rows]


def db_snapshot(url: str) -> dict[str, Any]:
    """Count what the bot stored: alerts, incidents, outbox rows by status."""
    queries = {
        "alerts": "SELECT count(*) FROM alert",
        "incidents": "SELECT count(*) FROM incident",
        "journal_entries": "SELECT count(*) FROM journal_entry",
    }
    outbox_q = "SELECT status, count(*) FROM outbox GROUP BY status"
    out: dict[str, Any] = {}
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            for key, q in queries.items():
                out[key] = conn.execute(q).fetchone()[0]
            out["outbox"] = dict(conn.execute(outbox_q).fetchall())
        finally:
            conn.close()
        return out
    import psycopg

    with psycopg.connect(url) as pg:
        for key, q in queries.items():
            row = pg.execute(q).fetchone()
            out[key] = row[0] if row else 0
        out["outbox"] = {str(s): n for s, n in pg.execute(outbox_q).fetchall()}
    return out


# -- measurement ---------------------------------------------------------------------------------


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (every thread), from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> tuple[float, float, float]:
    """(busy, total, irq + softirq) jiffies of every CPU, from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except OSError:
        return math.nan, math.nan, math.nan
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total, values[5] + values[6]


def _share(part: float, whole: float) -> float:
    return part / whole if whole > 0 else math.nan


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class TargetResult:
    target: str
    database: str  # none | sqlite | postgres
    seconds: float
    requests: int
    alerts: int
    requests_per_s: float
    alerts_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    errors: int
    error_kinds: dict[str, int]
    statuses: dict[str, int]
    answered_2xx_total: int
    alerts_2xx_total: int
    alerts_unanswered_total: int
    server_cpu_cores: float
    db_cpu_cores: float | None
    generator_cpu_cores: float
    irq_cpu_cores: float
    other_cpu_cores: float
    machine_busy: float
    alerts_per_s_by_second: list[float]


def run_load(
    name: str,
    server: Server,
    args: argparse.Namespace,
    token: str,
    base: str,
    database: str = "none",
    db_pids: Callable[[], list[int]] | None = None,
) -> TargetResult:
    """Load `server` with the traffic for warm-up + `seconds` and collect the numbers."""
    ctx = mp.get_context("spawn")
    workers = []
    for i in range(args.processes):
        cfg = WorkerConfig(
            index=i,
            host="127.0.0.1",
            port=server.port,
            token=token,
            senders=list(range(i, args.concurrency, args.processes)),
            groups=args.groups,
            alerts=args.alerts_per_notification,
            base_time=base,
            warmup=args.warmup,
            seconds=args.seconds,
            timeout=args.timeout,
            client=args.client,
        )
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker_main, args=(cfg, child), name=f"loadgen-{i}", daemon=True)
        proc.start()
        child.close()
        workers.append((proc, parent))
    for proc, conn in workers:
        if not conn.poll(60) or conn.recv() != "ready":
            raise RuntimeError(f"load generator {proc.name} did not start")
    start = time.monotonic() + 0.5
    for _, conn in workers:
        conn.send(start)
    t_measure, t_end = start + args.warmup, start + args.warmup + args.seconds
    time.sleep(max(0.0, t_measure - time.monotonic()))
    backends = db_pids() if db_pids else []
    cpu0, busy0 = [_proc_cpu_s(p) for p in [server.pid, *backends]], _machine_busy()
    time.sleep(max(0.0, t_end - time.monotonic()))
    cpu1, busy1 = [_proc_cpu_s(p) for p in [server.pid, *backends]], _machine_busy()
    stats: list[WorkerStats] = []
    for proc, conn in workers:
        if not conn.poll(args.timeout + 30):
            raise RuntimeError(f"load generator {proc.name} did not report")
        stats.append(conn.recv())
        proc.join(10)
    if not server.alive():
        raise RuntimeError(f"{name} died during the run:\n{server.tail()}")

    latencies = sorted(x for s in stats for x in s.latencies)
    ok = sum(s.ok for s in stats)
    slices = [sum(col) for col in zip(*(s.slices for s in stats), strict=True)]
    kinds: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    for s in stats:
        kinds.update(s.error_kinds)
        statuses.update(s.statuses)

    server_cpu = (cpu1[0] - cpu0[0]) / args.seconds
    db_cpu = (
        sum(b - a for a, b in zip(cpu0[1:], cpu1[1:], strict=True) if not math.isnan(b - a))
        / args.seconds
        if db_pids
        else None
    )
    gen_cpu = sum(s.cpu_s for s in stats) / args.seconds
    cores = os.cpu_count() or 1
    machine = _share(busy1[0] - busy0[0], busy1[1] - busy0[1])
    irq = _share(busy1[2] - busy0[2], busy1[1] - busy0[1]) * cores
    other = machine * cores - server_cpu - (db_cpu or 0.0) - gen_cpu - irq

    def ms(q: float) -> float:
        return _percentile(latencies, q) * 1000

    return TargetResult(
        target=name,
        database=database,
        seconds=args.seconds,
        requests=ok,
        alerts=ok * args.alerts_per_notification,
        requests_per_s=ok / args.seconds,
        alerts_per_s=ok * args.alerts_per_notification / args.seconds,
        p50_ms=ms(0.50),
        p90_ms=ms(0.90),
        p99_ms=ms(0.99),
        p999_ms=ms(0.999),
        max_ms=latencies[-1] * 1000 if latencies else math.nan,
        errors=sum(s.errors for s in stats),
        error_kinds=dict(kinds),
        statuses={str(k): v for k, v in sorted(statuses.items())},
        answered_2xx_total=sum(s.answered_2xx for s in stats),
        alerts_2xx_total=sum(s.alerts_2xx for s in stats),
        alerts_unanswered_total=sum(s.alerts_unanswered for s in stats),
        server_cpu_cores=server_cpu,
        db_cpu_cores=db_cpu,
        generator_cpu_cores=gen_cpu,
        irq_cpu_cores=irq,
        other_cpu_cores=other,
        machine_busy=machine,
        alerts_per_s_by_second=[n * args.alerts_per_notification for n in slices],
    )


# -- report --------------------------------------------------------------------------------------


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    dirty = subprocess.run(
        ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


NOISY_CORES = 0.25


def print_table(results: list[TargetResult], cpus: int) -> None:
    print()
    print(
        f"{'target':<7}{'requests/s':>12}{'alerts/s':>11}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}{'errors':>8}"
    )
    for r in results:
        print(
            f"{r.target:<7}{r.requests_per_s:>12,.0f}{r.alerts_per_s:>11,.0f}{r.p50_ms:>9.1f}"
            f"{r.p99_ms:>9.1f}{r.max_ms:>9.1f}{r.errors:>8}"
        )
    print(f"\nCPU cores used while measuring (the machine has {cpus}):")
    print(
        f"{'target':<7}{'server':>9}{'database':>10}{'loadgen':>9}{'irq':>7}{'other':>8}{'busy':>8}"
    )
    for r in results:
        db = {"none": "-", "sqlite": "in-proc"}.get(r.database, f"{r.db_cpu_cores or 0:.2f}")
        print(
            f"{r.target:<7}{r.server_cpu_cores:>9.2f}{db:>10}{r.generator_cpu_cores:>9.2f}"
            f"{r.irq_cpu_cores:>7.2f}{r.other_cpu_cores:>8.2f}{r.machine_busy * 100:>7.0f}%"
        )
    print()
    for r in results:
        slices = r.alerts_per_s_by_second
        step = max(1, len(slices) // 10)
        shown = [
            sum(slices[i : i + step]) / len(slices[i : i + step])
            for i in range(0, len(slices), step)
        ]
        print(f"{r.target} alerts/s per {step} s: " + " ".join(f"{v:,.0f}" for v in shown))
        if r.error_kinds:
            print(f"{r.target} errors: {r.error_kinds}")
    for r in results:
        if r.other_cpu_cores > NOISY_CORES:
            print(
                f"WARNING: other processes used {r.other_cpu_cores:.2f} cores while {r.target} "
                "was measured; its numbers are low by an unknown amount"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Durable ingest throughput: the bot vs a bare ASGI endpoint."
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per target")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent senders in total")
    parser.add_argument(
        "--alerts-per-notification", type=int, default=5, choices=range(1, 256), metavar="N"
    )
    parser.add_argument(
        "--groups", type=int, default=20, help="Alertmanager groups (one incident each)"
    )
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--processes", type=int, default=1, help="load generator processes")
    parser.add_argument(
        "--client", choices=["raw", "httpx"], default="raw", help="HTTP client of the senders"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout (s)")
    parser.add_argument("--only", choices=["bare", "bot"], help="load one target (no ratio)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (logs, SQLite file)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.processes <= args.concurrency:
        parser.error("--processes must be between 1 and --concurrency")

    cpus = os.cpu_count() or 1
    token = secrets.token_urlsafe(24)
    base = _iso(datetime.now(UTC).replace(microsecond=0))
    workdir = Path(tempfile.mkdtemp(prefix="ai-incident-bench-"))
    sample = templates(args.groups, args.alerts_per_notification, datetime.now(UTC))[0].render(0)
    log_level = os.environ.get("AI_INCIDENT_LOG_LEVEL", "INFO").lower()
    print(
        f"ingest benchmark: POST {WEBHOOK}, Alertmanager v4, {args.groups} groups, "
        f"{args.alerts_per_notification} alerts per notification (~{len(sample)} bytes), "
        f"every notification with new fingerprints"
    )
    print(
        f"{args.concurrency} closed-loop senders on keep-alive connections ({args.client} client)"
        f" in {args.processes} load generator process(es); {args.warmup:g} s warm-up +"
        f" {args.seconds:g} s measured per target; bot database: {args.database}; {cpus} CPU(s)"
    )

    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}  # local mode
    results: list[TargetResult] = []
    durability: dict[str, Any] | None = None
    bot_lines = 0
    try:
        if args.only in (None, "bare"):
            bare = Server(
                "bare",
                [sys.executable, str(ROOT / "bench" / "bare_app.py"), "--log-level", log_level],
                env,
                workdir,
            )
            with bare:
                print(
                    f"\nbare ASGI endpoint ready on :{bare.port} (pid {bare.pid}); loading ...",
                    flush=True,
                )
                results.append(run_load("bare", bare, args, token, base))
        if args.only in (None, "bot"):
            with database(args.database, workdir) as url:
                policy = workdir / "ai-incident.yml"
                shutil.copyfile(EXAMPLE_POLICY, policy)
                bot_env = {
                    **env,
                    "DATABASE_URL": url,
                    "AI_INCIDENT_CONFIG": str(policy),
                    "AI_INCIDENT_WEBHOOK_TOKEN": token,
                    # the example policy's alertmanager source: the token names the source
                    "ALERTMANAGER_WEBHOOK_TOKEN": token,
                }
                bot = Server("bot", [sys.executable, "-m", "bot.cli", "serve"], bot_env, workdir)
                with bot:
                    print(
                        f"bot ready on :{bot.port} (pid {bot.pid}, {url.split('@')[-1]});"
                        " loading ...",
                        flush=True,
                    )
                    backends = (lambda: pg_backends(url)) if args.database == "postgres" else None
                    result = run_load("bot", bot, args, token, base, args.database, backends)
                    results.append(result)
                    # like a crash: no shutdown hooks; what a 2xx acknowledged must be stored
                    bot.kill()
                    bot_lines = bot.output_lines()
                    stored = db_snapshot(url)
                acked, unanswered = result.alerts_2xx_total, result.alerts_unanswered_total
                durability = {
                    "alerts_in_2xx_answers": acked,
                    "requests_answered_2xx": result.answered_2xx_total,
                    # a request that timed out may or may not have been stored
                    "alerts_in_unanswered_requests": unanswered,
                    **stored,
                    "ok": acked <= stored["alerts"] <= acked + unanswered,
                }
    except RuntimeError as exc:
        print(f"\nbenchmark aborted: {exc}", file=sys.stderr)
        print(f"work directory kept: {workdir}", file=sys.stderr)
        return 2

    print_table(results, cpus)
    by_name = {r.target: r for r in results}
    ratio = (
        by_name["bot"].alerts_per_s / by_name["bare"].alerts_per_s
        if "bot" in by_name and "bare" in by_name and by_name["bare"].alerts_per_s
        else None
    )
    if ratio is not None:
        print(f"\nratio bot/bare (alerts/s): {ratio:.3f}")
    checks: dict[str, bool] = {}
    if "bot" in by_name:
        b = by_name["bot"]
        checks[f"bot alerts/s >= {TARGET_ALERTS_PER_S:,.0f}"] = (
            b.alerts_per_s >= TARGET_ALERTS_PER_S
        )
        if ratio is not None:
            checks[f"ratio bot/bare >= {TARGET_RATIO}"] = ratio >= TARGET_RATIO
        checks[f"bot p99 < {TARGET_P99_MS:g} ms at {args.concurrency} senders"] = (
            b.p99_ms < TARGET_P99_MS
        )
        checks["bot answered every request 2xx"] = b.errors == 0
    if durability is not None:
        maybe = durability["alerts_in_unanswered_requests"]
        print(
            f"durability: {durability['alerts_in_2xx_answers']} alerts in 2xx answers "
            f"({durability['requests_answered_2xx']} requests incl. warm-up"
            f"{f', {maybe} more in unanswered requests' if maybe else ''}), "
            f"{durability['alerts']} rows in table alert after SIGKILL -> "
            f"{'OK' if durability['ok'] else 'MISMATCH'}; {durability['incidents']} incidents, "
            f"{durability['journal_entries']} journal entries, outbox {durability['outbox']}, "
            f"{bot_lines} lines of console output"
        )
        checks["durability: stored alerts == alerts in 2xx answers"] = durability["ok"]
    if checks:
        print()
        for name, ok in checks.items():
            print(f"  {'pass' if ok else 'FAIL'}  {name}")
        failed = [n for n, ok in checks.items() if not ok]
        print("PASS" if not failed else "FAIL: " + "; ".join(failed))

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"ingest-{args.database}-{stamp}.json"
    record = {
        "benchmark": "ingest",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "machine": {
            "cpus": cpus,
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "config": dict(vars(args)),
        "notification_bytes": len(sample),
        "results": [asdict(r) for r in results],
        "ratio": ratio,
        "durability": durability,
        "checks": checks,
        "pass": all(checks.values()) if checks else None,
    }
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nresult file: {out.relative_to(ROOT)}")
    if args.keep:
        print(f"work directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if not checks or all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
