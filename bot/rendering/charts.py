"""The digest's chart: incidents and handoffs per day of the week, by workflow, as a PNG."""

from __future__ import annotations

import io
from zoneinfo import ZoneInfo

from bot.domain.digest import Digest

__all__ = ["week_chart"]


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
