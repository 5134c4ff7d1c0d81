"""Cron expressions and timezones: config types checked when the file is read, and when they fire.

Shared by rules and digests, so "61 * * * *" or "Mars/Olympus" stop the
daemon at start-up with the key's path instead of surfacing when the
scheduler first fires, and so a cron means the same in both.

A cron means what crontab(5) says: five fields (minute, hour, day of month,
month, day of week), 0 and 7 are Sunday, names (mon-fri, jan), ranges, lists
and steps, the @ nicknames but @reboot; and when both day fields are
restricted (neither starts with ``*``), a day matching either fires. cronsim
(Healthchecks' evaluator of Debian cron's calendar) matches wall-clock times;
APScheduler 3's CronTrigger cannot say any of this (Monday is 0 there, the
day fields are ANDed). Extensions crontab(5) lacks (L, W, #, ?, seconds) are
refused, and so is a cron that never fires, such as 30 February.

Daylight saving time follows cron(8): a cron with ``*`` at the start of its
minute or hour field follows the wall clock (twice in a repeated hour, not in
a skipped one); any other fires once a day at its time: the first time when
the time repeats, and at the change when it is skipped. cronsim is imported
only when a cron is present.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator

_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or jan-dec"),
    ("day of week", "0-7 (0 and 7 are Sunday) or sun-sat"),
)
NICKNAMES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_VALUE = r"(?:[0-9]+|[a-z]{3})"
_ITEM = re.compile(rf"(?:\*|{_VALUE}(?:-{_VALUE})?)(?:/[0-9]+)?", re.IGNORECASE)
_SUNDAY_ENDS_RANGE = re.compile(r"^(?!sun-|0-)(.+)-sun(/[0-9]+)?$", re.IGNORECASE)
_EXAMPLE = "like '0 8 * * mon-fri'"
_MINUTE = timedelta(minutes=1)
_SAMPLE = timedelta(hours=6)  # DST changes are months apart: samples this close see each one
_GIVE_UP = timedelta(days=366 * 60)  # cronsim also stops looking after 50 years


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{value!r} is not an IANA timezone like Europe/London or America/New_York"
        ) from None
    return value


def crontab_fields(value: str) -> tuple[str, ...]:
    """The five fields of a crontab(5) expression, for cronsim; ValueError says what is wrong.

    A nickname becomes its five fields, and a day-of-week range ending in
    ``sun`` ends in 7 (``sat-sun``, accepted before as APScheduler read it).
    """
    from cronsim import CronSim, CronSimError

    def refuse(detail: str) -> ValueError:
        return ValueError(f"{value!r} is not a cron expression {_EXAMPLE} ({detail})")

    text = value.strip()
    if text.startswith("@"):
        if text.lower() not in NICKNAMES:
            raise refuse(f"{text} is not a schedule; the nicknames are {', '.join(NICKNAMES)}")
        text = NICKNAMES[text.lower()]
    written = text.split()
    if len(written) != 5:
        raise refuse(
            f"it has {len(written)} fields; crontab(5) has 5: "
            "minute hour day-of-month month day-of-week"
        )
    fields = [
        *written[:4],
        ",".join(_SUNDAY_ENDS_RANGE.sub(r"\1-7\2", item) for item in written[4].split(",")),
    ]
    for index, (name, allowed) in enumerate(_FIELDS):
        alone = ["*"] * 5
        alone[index] = fields[index]
        try:
            if not all(_ITEM.fullmatch(item) for item in fields[index].split(",")):
                raise CronSimError(name)
            CronSim(" ".join(alone), datetime(2000, 1, 1))
        except CronSimError:
            raise refuse(
                f"{name} {written[index]!r}: allowed {allowed}, "
                "as n, n-m, * or a list of them, each with an optional /step"
            ) from None
    _check_it_fires(value, fields)
    return tuple(fields)


def _check_it_fires(value: str, fields: list[str]) -> None:
    """With the day of week unrestricted, some chosen month must have the smallest chosen day."""
    from cronsim import CronSim

    day, month, weekday = fields[2:]
    if not weekday.startswith("*"):
        return  # any day of that weekday fires: OR with a restricted day, and a * day has the 1st
    days = CronSim(f"0 0 {day} {month} 1", datetime(2000, 1, 1))  # weekday 1: the fields alone
    first = min(days.days)
    if first <= max(calendar.monthrange(2000, m)[1] for m in days.months):  # 2000: 29 February
        return
    names = [calendar.month_name[m] for m in sorted(days.months)]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    raise ValueError(
        f"{value!r} never fires: {listed} {'has' if len(names) == 1 else 'have'} no day {first}"
    )


def check_cron(value: str) -> str:
    crontab_fields(value)
    return value


TimeZoneName = Annotated[str, AfterValidator(check_timezone)]
CronExpression = Annotated[str, AfterValidator(check_cron)]


@dataclass(frozen=True)
class CronSchedule:
    """A crontab(5) expression in a timezone, and the instants it fires at."""

    cron: str
    zone: ZoneInfo

    @cached_property
    def fields(self) -> tuple[str, ...]:
        return crontab_fields(self.cron)

    @cached_property
    def follows_wall_clock(self) -> bool:
        """cron(8)'s "wildcard" job: ``*`` starts the minute or the hour field."""
        minute, hour = self.fields[:2]
        return minute.startswith("*") or hour.startswith("*")

    def occurrences(self, start: datetime, end: datetime) -> list[datetime]:
        """Instants in ``(start, end]``, oldest first, each once, in UTC.

        Wall-clock times that match are mapped to instants by cron(8)'s rules;
        the walls searched span the zone's offsets over the interval. UTC,
        because adding to a zone's time in its repeated hour drops ``fold`` and
        moves it an hour back (how the search used to loop at the fall-back).
        """
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        if end <= start:
            return []
        low, high = self._offsets(start, end)
        first_wall = (start + low).replace(tzinfo=None, second=0, microsecond=0)
        last_wall = (end + high).replace(tzinfo=None)
        found = {
            moment
            for wall in self._walls(first_wall, last_wall)
            for moment in self._instants(wall)
            if start < moment <= end
        }
        return sorted(found)

    def next_after(self, moment: datetime) -> datetime | None:
        """The first occurrence after ``moment``, or None if there is none for decades."""
        span = _MINUTE
        while span <= _GIVE_UP:
            found = self.occurrences(moment, moment + span)
            if found:
                return found[0]
            span *= 4
        return None

    def _offsets(self, start: datetime, end: datetime) -> tuple[timedelta, timedelta]:
        """The zone's smallest and largest UTC offset from ``start`` to ``end``."""
        offsets = set()
        moment = start
        while True:
            offset = moment.astimezone(self.zone).utcoffset()
            assert offset is not None
            offsets.add(offset)
            if moment >= end:
                return min(offsets), max(offsets)
            moment = min(moment + _SAMPLE, end)

    def _walls(self, first: datetime, last: datetime) -> Iterator[datetime]:
        """Matching naive wall-clock times from ``first`` to ``last`` (cronsim's calendar)."""
        from cronsim import CronSim

        for wall in CronSim(" ".join(self.fields), first - timedelta(seconds=1)):
            if wall > last:
                return
            yield wall

    def _instants(self, wall: datetime) -> list[datetime]:
        """The UTC instants a matching wall-clock time fires at, by cron(8)'s rules."""
        first = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        if first.astimezone(self.zone).replace(tzinfo=None) == wall:
            if not self.follows_wall_clock:
                return [first]  # a repeated time: the first one only
            return [first, wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC)]
        if self.follows_wall_clock:
            return []  # skipped: the wall clock never shows it
        return [self._end_of_gap(wall)]

    def _end_of_gap(self, wall: datetime) -> datetime:
        """The instant the clock jumped over ``wall``: the first real minute after it."""
        later = wall
        while True:
            later += _MINUTE
            moment = later.replace(tzinfo=self.zone).astimezone(UTC)
            if moment.astimezone(self.zone).replace(tzinfo=None) == later:
                return moment
