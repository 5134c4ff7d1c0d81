"""The trends section: incidents opened per day (or week) by severity, and time to resolve.

Pure, like content.py: the span comes from the digest's cron and the window's end,
the figures from the rows content.py already made visible. A daily digest shows the
last 7 days, a weekly one the last 8 weeks: periods start at local midnight (days)
or Monday midnight (weeks) in the digest's timezone, so a DST change makes a day
23 or 25 hours long, never moves its label. The last period is the one the window
ends in (partial: up to the end). The comparison is with the same number of periods
just before, so the fetch reaches back twice the span (``TrendWindow.since``).

Bars are widths in percent of the busiest period, one segment per severity, rounded
on the running total so a bar never exceeds 100%.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from automations.durations import human_span
from automations.schedules import CronSchedule

if TYPE_CHECKING:
    from automations.digest.config import DigestOptions
    from automations.digest.content import IncidentRow

Unit = Literal["day", "week"]
Cadence = Literal["daily", "weekly"]
PERIODS: dict[Unit, int] = {"day": 7, "week": 8}
WEEKLY_GAP = timedelta(days=7)  # fires this far apart (or more) make a weekly digest
_GAPS_CHECKED = 6  # consecutive fires looked at: enough for any weekly pattern to repeat
EN_DASH = "\u2013"  # between the days of a week: '23–29 Nov'  # noqa: RUF003
TEXT_BAR = 30  # characters of the busiest period's bar in the plain-text part
# Plain-text bar characters by badge tone, darkest for the most severe.
TEXT_BLOCKS = {"critical": "█", "major": "▓", "minor": "▒", "none": "░"}

Bounds = tuple[datetime, datetime]


# --- the span ----------------------------------------------------------------------------


def cadence(schedule: CronSchedule, around: datetime) -> Cadence:
    """'weekly' when consecutive fires are a week or more apart, else 'daily'.

    Gaps are measured on the wall clock, so a weekly cron across a DST change
    (6 days 23 hours of real time) is still weekly. Fires are looked for from four
    weeks before ``around``, so the answer does not depend on the day of the week.
    """
    zone = schedule.zone
    previous = schedule.next_after(around - timedelta(weeks=4))
    for _ in range(_GAPS_CHECKED):
        if previous is None:
            break
        following = schedule.next_after(previous)
        if following is None:
            break
        if _wall(following, zone) - _wall(previous, zone) < WEEKLY_GAP:
            return "daily"
        previous = following
    return "weekly"


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def trend_unit(source: DigestOptions | CronSchedule, end: datetime) -> Unit:
    """The digest's ``trend_period``, or (auto) days for a daily cron, weeks for a weekly one."""
    if isinstance(source, CronSchedule):
        schedule = source
    elif source.trend_period != "auto":
        return source.trend_period
    else:
        schedule = CronSchedule(source.cron, source.zone)
    return "week" if cadence(schedule, end) == "weekly" else "day"


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    """The instant ``day`` begins in ``zone``, in UTC: arithmetic on two times of one zone
    is wall-clock arithmetic in Python (a 25-hour day would measure 24)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def period_bounds(unit: Unit, zone: ZoneInfo, end: datetime, count: int) -> tuple[Bounds, ...]:
    """``count`` consecutive periods, oldest first, the last one holding ``end``.

    ``end`` is exclusive: a window ending at midnight ends with the day before it,
    not with an empty day. The last period is cut at ``end``.
    """
    last_day = (end - timedelta(microseconds=1)).astimezone(zone).date()
    if unit == "week":
        last_day -= timedelta(days=last_day.weekday())
    step = timedelta(weeks=1) if unit == "week" else timedelta(days=1)
    starts = [last_day - step * k for k in range(count - 1, -1, -1)]
    out = []
    for index, day in enumerate(starts):
        stop = end if index == count - 1 else _midnight(starts[index + 1], zone)
        out.append((_midnight(day, zone), stop))
    return tuple(out)


@dataclass(frozen=True)
class TrendWindow:
    """The periods shown and the window they are compared with."""

    unit: Unit
    zone: ZoneInfo
    periods: tuple[Bounds, ...]
    previous: Bounds  # the same number of periods just before

    @property
    def start(self) -> datetime:
        return self.periods[0][0]

    @property
    def end(self) -> datetime:
        return self.periods[-1][1]

    @property
    def since(self) -> datetime:
        """The earliest moment the trends need incidents from (the comparison's start)."""
        return self.previous[0]


def trend_window(source: DigestOptions | CronSchedule, end: datetime) -> TrendWindow:
    """The trend periods of a digest (its options, or just its cron) for a window ending at
    ``end``."""
    zone = source.zone
    unit = trend_unit(source, end)
    count = PERIODS[unit]
    periods = period_bounds(unit, zone, end, count)
    before = period_bounds(unit, zone, periods[0][0], count)
    return TrendWindow(unit, zone, periods, (before[0][0], before[-1][1]))


# --- the figures -------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """One severity's part of a bar."""

    severity: str
    tone: str
    count: int
    width: int  # percent of the busiest period's bar


@dataclass(frozen=True)
class TrendRow:
    """One period: what was opened in it (by severity) and how fast what it resolved took."""

    start: datetime
    end: datetime
    label: str
    opened: int
    segments: tuple[Segment, ...]  # most severe first; zero-width ones left out
    spare: int  # 100 - the segments' widths: the empty rest of the track
    resolved: int
    median: timedelta | None
    text_bar: str


@dataclass(frozen=True)
class Trends:
    """The whole section."""

    unit: Unit
    rows: tuple[TrendRow, ...]
    legend: tuple[tuple[str, str], ...]  # (severity, tone) of the severities in the bars
    opened: int
    previous_opened: int
    resolved: int
    median: timedelta | None
    previous_median: timedelta | None
    comparison: str

    @property
    def text_legend(self) -> str:
        """'█ Critical  ▓ Major  ▒ Minor': the plain-text bars' key."""
        return "  ".join(f"{TEXT_BLOCKS[tone]} {name}" for name, tone in self.legend)

    @property
    def span_name(self) -> str:
        """'7 days', '8 weeks'."""
        return f"{len(self.rows)} {self.unit}s"


def period_label(unit: Unit, start: datetime, zone: ZoneInfo) -> str:
    """'Tue 1 Dec' for a day; for the week from ``start``, see ``week_label``."""
    first = start.astimezone(zone).date()
    if unit == "day":
        return f"{first:%a} {first.day} {first:%b}"
    return week_label(first)


def week_label(first: date) -> str:
    """The seven days from ``first``, an en dash between: '23-29 Nov', '30 Nov-6 Dec'."""
    last = first + timedelta(days=6)
    if first.month == last.month:
        return f"{first.day}{EN_DASH}{last.day} {last:%b}"
    return f"{first.day} {first:%b}{EN_DASH}{last.day} {last:%b}"


def widths(counts: Sequence[int], widest: int, full: int = 100) -> list[int]:
    """Widths of ``counts`` where ``widest`` is ``full`` (percent), rounded on the running
    total: they sum to round(sum * full / widest), never over ``full``."""
    out, running, drawn = [], 0, 0
    for count in counts:
        running += count
        upto = round(running * full / widest) if widest else 0
        out.append(upto - drawn)
        drawn = upto
    return out


def median_duration(durations: Iterable[timedelta]) -> timedelta | None:
    """The lower median, as the figures section computes it (an actual incident's time)."""
    ordered = sorted(durations)
    return statistics.median_low(ordered) if ordered else None


def _within(moment: datetime | None, bounds: Bounds) -> bool:
    return moment is not None and bounds[0] <= moment < bounds[1]


def _severity_key(row: IncidentRow) -> tuple[int, int]:
    return (0 if row.severity_rank is not None else 1, -(row.severity_rank or 0))


def build_trends(rows: Sequence[IncidentRow], window: TrendWindow) -> Trends:
    """The section from the rows the audience may see (content.visible made them)."""
    ranked = sorted(rows, key=_severity_key)
    legend = tuple(dict.fromkeys((r.severity, r.tone) for r in ranked))
    order = [severity for severity, _tone in legend]
    tone_of = dict(legend)
    counts: list[dict[str, int]] = []
    for bounds in window.periods:
        opened = [r for r in ranked if _within(r.created_at, bounds)]
        counts.append({s: sum(1 for r in opened if r.severity == s) for s in order})
    widest = max((sum(c.values()) for c in counts), default=0)
    out = []
    for bounds, by_severity in zip(window.periods, counts, strict=True):
        sizes = [by_severity[s] for s in order]
        segments = tuple(
            Segment(s, tone_of[s], n, w)
            for s, n, w in zip(order, sizes, widths(sizes, widest), strict=True)
            if n and w
        )
        resolved = _resolved(rows, bounds)
        out.append(
            TrendRow(
                start=bounds[0],
                end=bounds[1],
                label=period_label(window.unit, bounds[0], window.zone),
                opened=sum(sizes),
                segments=segments,
                spare=100 - sum(s.width for s in segments),
                resolved=len(resolved),
                median=median_duration(resolved),
                text_bar=text_bar(order, tone_of, sizes, widest),
            )
        )
    span = (window.start, window.end)
    opened_now = sum(1 for r in rows if _within(r.created_at, span))
    opened_before = sum(1 for r in rows if _within(r.created_at, window.previous))
    median_now = median_duration(_resolved(rows, span))
    median_before = median_duration(_resolved(rows, window.previous))
    return Trends(
        unit=window.unit,
        rows=tuple(out),
        legend=tuple((s, tone_of[s]) for s in order if any(c[s] for c in counts)),
        opened=opened_now,
        previous_opened=opened_before,
        resolved=len(_resolved(rows, span)),
        median=median_now,
        previous_median=median_before,
        comparison=compare(
            f"{len(out)} {window.unit}s", opened_now, opened_before, median_now, median_before
        ),
    )


def _resolved(rows: Iterable[IncidentRow], bounds: Bounds) -> list[timedelta]:
    """Times to resolve of the incidents resolved within ``bounds``."""
    return [r.duration for r in rows if r.duration is not None and _within(r.resolved_at, bounds)]


def text_bar(order: Sequence[str], tones: dict[str, str], sizes: Sequence[int], widest: int) -> str:
    """The plain-text bar: one block character per severity, TEXT_BAR wide at the busiest."""
    cells = widths(sizes, widest, TEXT_BAR)
    bar = "".join(TEXT_BLOCKS[tones[s]] * n for s, n in zip(order, cells, strict=True))
    if not bar and any(sizes):
        bar = TEXT_BLOCKS[tones[order[next(i for i, n in enumerate(sizes) if n)]]]
    return bar


def compare(
    span: str, opened: int, before: int, median: timedelta | None, median_before: timedelta | None
) -> str:
    """'12 opened, 4 more than the previous 7 days; median time to resolve 2h 5m, 30m faster'."""
    if opened == before:
        versus = f"as many as the previous {span}"
    else:
        versus = f"{abs(opened - before)} {'more' if opened > before else 'fewer'} than the "
        versus += f"previous {span}"
    text = f"{opened} opened, {versus}; "
    if median is None:
        return text + "none resolved"
    text += f"median time to resolve {human_span(median)}"
    if median_before is None:
        return text + " (none resolved before)"
    change = median - median_before
    if abs(change) < timedelta(minutes=1):
        return text + ", as before"
    return text + f", {human_span(abs(change))} {'slower' if change > timedelta(0) else 'faster'}"
