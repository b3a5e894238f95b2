"""Charts as PNG: the digest's incidents and handoffs per day, and a workflow's last 7 days."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from datetime import date
from zoneinfo import ZoneInfo

from bot.domain.digest import Digest
from bot.domain.watch.figures import HourPoint

__all__ = ["watch_chart", "week_chart"]


def week_chart(digest: Digest, zone: ZoneInfo) -> bytes | None:
    """Return a PNG of stacked daily bars per workflow, or None when the week has nothing."""
    if not digest.per_day:
        return None
    # imported here: the figure library is only needed when a digest is drawn
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5), dpi=100)
    top, bottom = figure.subplots(2, 1, sharex=True)
    names = sorted(digest.per_day)
    days = [d for d, _, _ in digest.per_day[names[0]]]
    labels = [d.strftime("%a %d") for d in days]
    positions = list(range(len(days)))
    for axis, index, title in ((top, 1, "Incidents opened"), (bottom, 2, "Handoffs received")):
        base = [0] * len(days)
        for name in names:
            counts = [row[1] if index == 1 else row[2] for row in digest.per_day[name]]
            axis.bar(positions, counts, bottom=base, label=name)
            base = [b + c for b, c in zip(base, counts, strict=True)]
        axis.set_title(title, fontsize=10, loc="left")
        axis.yaxis.get_major_locator().set_params(integer=True)
        axis.grid(axis="y", alpha=0.3)
    bottom.set_xticks(positions, labels)
    top.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.suptitle(f"AI operations, week {digest.week}", fontsize=11)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def watch_chart(points: Sequence[HourPoint], workflow: str, zone: ZoneInfo) -> bytes | None:
    """Return a PNG of runs and error rate per hour and spend per day, or None without runs."""
    if not any(p.runs for p in points):
        return None
    from matplotlib.figure import Figure

    local = [p.start.astimezone(zone) for p in points]
    xs = list(range(len(points)))  # one step an hour, oldest first
    days: dict[date, list[int]] = {}
    for x, at in zip(xs, local, strict=True):
        days.setdefault(at.date(), []).append(x)
    spend = {day: sum(points[x].cost_usd or 0.0 for x in hours) for day, hours in days.items()}
    figure = Figure(figsize=(9, 6.5), dpi=100)
    runs, errors, cost = figure.subplots(3, 1, sharex=True)
    runs.bar(xs, [p.runs for p in points], width=0.9, align="edge", color="tab:blue")
    runs.set_title("Runs per hour", fontsize=10, loc="left")
    runs.yaxis.get_major_locator().set_params(integer=True)
    # an hour without runs has no rate: NaN breaks the line there rather than bridging it
    rates = [
        p.error_rate * 100 if p.runs and p.error_rate is not None else math.nan for p in points
    ]
    errors.plot([x + 0.5 for x in xs], rates, marker=".", linewidth=1, color="tab:red")
    errors.set_title("Error rate per hour (%)", fontsize=10, loc="left")
    errors.set_ylim(bottom=0)
    cost.bar(
        [hours[0] for hours in days.values()],
        list(spend.values()),
        width=[0.9 * len(hours) for hours in days.values()],
        align="edge",
        color="tab:green",
    )
    cost.set_title("Spend per day (USD)", fontsize=10, loc="left")
    for axis in (runs, errors, cost):
        axis.grid(axis="y", alpha=0.3)
    cost.set_xlim(0, len(points))
    # a day the week only touches (its first or last few hours) gets a bar but no label
    labelled = {d: hours for d, hours in days.items() if len(hours) >= 6}
    cost.set_xticks(
        [hours[0] for hours in labelled.values()],
        [d.strftime("%a %d") for d in labelled],
        ha="left",
    )
    figure.suptitle(f"{workflow}, last 7 days ({zone.key})", fontsize=11)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
