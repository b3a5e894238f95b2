"""A synthetic week (and a bit) of one workflow's runs, with every figure worked out by hand.

`NOW` is Sunday 2026-12-06 14:02:30 UTC; the team's zone is UTC, so today is Dec 6 from 00:00.
History starts Saturday Nov 28 00:30 (8 days 14 hours before NOW: `history_days` 8).

- Background: one run every hour at :30 on Nov 28 .. Dec 5 and today from 00:30 to 12:30. On the
  7 full days before today, D-k (k = 1..7, Dec 5 back to Nov 29) every run costs k x $0.01; Nov 28
  (D-8) costs $1.00 a run and 9,000 tokens in, so any baseline that reaches it is visibly wrong.
  Tokens: 1,000 in + 500 out, except the 14:30 runs (1,000 + 1,500). Today's background runs cost
  $0.004; the 00:30 and 01:30 ones are errors. Model gpt-4o-2024-05-13, prompt v11.
- 12:02 today: an error (just outside the last 2 hours, which start at 12:03).
- 13:02 today: an error (inside the 2 hours, just outside the last hour, which starts at 13:03).
- The last hour, 8 runs with model gpt-4o-2024-08-06 and prompt v12, 2,000 + 1,000 tokens each:

    at     status   latency  cost   confidence  handed off
    13:05  ok        100 ms  0.01   0.9
    13:15  ok        200     0.02   0.8
    13:25  refusal   300     0.03
    13:35  refusal   400     0.04
    13:45  ok        500     0.05   0.7         yes
    13:55  error     700     0.06
    14:00  timeout   900     0.07
    14:01  ok       1000     0.08   0.6         (at 14:01:15, the latest run)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain.watch.history import Run, RunStatus

__all__ = ["FIRST", "NOW", "WORKFLOW", "week_runs"]

WORKFLOW = "support-bot"
NOW = datetime(2026, 12, 6, 14, 2, 30, tzinfo=UTC)
TODAY = datetime(2026, 12, 6, tzinfo=UTC)
FIRST = datetime(2026, 11, 28, 0, 30, tzinfo=UTC)
OLD_MODEL, NEW_MODEL = "gpt-4o-2024-05-13", "gpt-4o-2024-08-06"


def _run(at: datetime, **kw: object) -> Run:
    return Run(WORKFLOW, f"run-{at:%Y%m%d%H%M%S}", at, **kw)  # type: ignore[arg-type]


def week_runs() -> list[Run]:
    """Return the runs described above."""
    runs = []
    for days_back in range(8, 0, -1):
        day = TODAY - timedelta(days=days_back)
        for hour in range(24):
            runs.append(
                _run(
                    day + timedelta(hours=hour, minutes=30),
                    latency_ms=50.0,
                    tokens_in=9000 if days_back == 8 else 1000,
                    tokens_out=1500 if hour == 14 else 500,
                    cost_usd=1.0 if days_back == 8 else days_back * 0.01,
                    model=OLD_MODEL,
                    prompt_version="v11",
                )
            )
    for hour in range(13):
        runs.append(
            _run(
                TODAY + timedelta(hours=hour, minutes=30),
                status=RunStatus.ERROR if hour < 2 else RunStatus.OK,
                latency_ms=50.0,
                tokens_in=1000,
                tokens_out=500,
                cost_usd=0.004,
                model=OLD_MODEL,
                prompt_version="v11",
            )
        )
    runs.append(_run(TODAY + timedelta(hours=12, minutes=2), status=RunStatus.ERROR))
    runs.append(_run(TODAY + timedelta(hours=13, minutes=2), status=RunStatus.ERROR))
    last_hour: list[tuple[int, int, RunStatus, float, float | None, bool]] = [
        (13, 5, RunStatus.OK, 100, 0.9, False),
        (13, 15, RunStatus.OK, 200, 0.8, False),
        (13, 25, RunStatus.REFUSAL, 300, None, False),
        (13, 35, RunStatus.REFUSAL, 400, None, False),
        (13, 45, RunStatus.OK, 500, 0.7, True),
        (13, 55, RunStatus.ERROR, 700, None, False),
        (14, 0, RunStatus.TIMEOUT, 900, None, False),
        (14, 1, RunStatus.OK, 1000, 0.6, False),
    ]
    for index, (hour, minute, status, latency, confidence, handed_off) in enumerate(last_hour):
        runs.append(
            _run(
                TODAY + timedelta(hours=hour, minutes=minute, seconds=15 if hour == 14 else 0),
                status=status,
                latency_ms=latency,
                tokens_in=2000,
                tokens_out=1000,
                cost_usd=(index + 1) * 0.01,
                confidence=confidence,
                handed_off=handed_off,
                model=NEW_MODEL,
                prompt_version="v12",
            )
        )
    return runs
