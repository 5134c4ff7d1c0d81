"""Cron schedules across daylight-saving changes, checked against a minute-by-minute reference.

The reference walks real time one minute at a time and applies cron(8)'s
rules (Vixie/ISC cron, cronie, Debian cron), which the README promises:

- a schedule with ``*`` at the start of its minute or hour field follows the
  wall clock: it fires at every real minute whose local time matches, so twice
  in a repeated hour and not at all in a skipped one;
- any other schedule (a fixed time like ``30 1 * * *``) fires once: in a
  repeated hour only the first time, and a time skipped when clocks go forward
  fires at the moment of the change.

These tests use calendar dates on purpose: occurrences are a pure function of
the dates passed in, and nothing here reads the host's clock.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

import pytest

from automations.cron_trigger import cron_trigger
from automations.digest.schedule import Schedule

MINUTE = timedelta(minutes=1)
WINDOW = timedelta(hours=36)  # a whole local day on each side, and a weekday 08:00


class Change(NamedTuple):
    zone: str
    at: str  # the UTC instant of the change
    shift: timedelta  # how the UTC offset moves there (zero: a zone without DST)


CHANGES = [
    Change("Europe/London", "2026-03-29T01:00", timedelta(hours=1)),
    Change("Europe/London", "2026-10-25T01:00", timedelta(hours=-1)),
    Change("America/New_York", "2026-03-08T07:00", timedelta(hours=1)),
    Change("America/New_York", "2026-11-01T06:00", timedelta(hours=-1)),
    # Southern hemisphere: clocks go back in April and forward in October.
    Change("Australia/Sydney", "2026-04-04T16:00", timedelta(hours=-1)),
    Change("Australia/Sydney", "2026-10-03T16:00", timedelta(hours=1)),
    # A half-hour change.
    Change("Australia/Lord_Howe", "2026-04-04T15:00", timedelta(minutes=-30)),
    Change("Australia/Lord_Howe", "2026-10-03T15:30", timedelta(minutes=30)),
    # The change at midnight: a day that starts at 01:00, and a Saturday with two 23:00s.
    Change("America/Santiago", "2026-04-05T03:00", timedelta(hours=-1)),
    Change("America/Santiago", "2026-09-06T04:00", timedelta(hours=1)),
    # No DST: the same dates as London, nothing special may happen.
    Change("Asia/Kolkata", "2026-03-29T01:00", timedelta(0)),
    Change("Asia/Kolkata", "2026-10-25T01:00", timedelta(0)),
]


def _sunday_based(wall: datetime) -> int:
    return wall.isoweekday() % 7  # crontab(5): 0 (or 7) is Sunday


class Form(NamedTuple):
    cron: str
    follows_clock: bool  # * at the start of the minute or hour field
    matches: Callable[[datetime], bool]  # on the local wall-clock time


def _at(hour: int, minute: int) -> Callable[[datetime], bool]:
    return lambda w: (w.hour, w.minute) == (hour, minute)


FORMS = [
    Form("* * * * *", True, lambda w: True),
    Form("0 * * * *", True, lambda w: w.minute == 0),
    Form("*/15 * * * *", True, lambda w: w.minute % 15 == 0),
    Form("*/20 1-3 * * *", True, lambda w: w.minute % 20 == 0 and 1 <= w.hour <= 3),
    Form("30 */2 * * *", True, lambda w: w.minute == 30 and w.hour % 2 == 0),
    # Daily at a time inside some zone's repeated or skipped hour (see CHANGES).
    Form("0 0 * * *", False, _at(0, 0)),
    Form("30 0 * * *", False, _at(0, 30)),
    Form("30 1 * * *", False, _at(1, 30)),
    Form("45 1 * * *", False, _at(1, 45)),
    Form("15 2 * * *", False, _at(2, 15)),
    Form("30 2 * * *", False, _at(2, 30)),
    Form("30 23 * * *", False, _at(23, 30)),
    Form("0,30 1,2 * * *", False, lambda w: w.minute in (0, 30) and w.hour in (1, 2)),
    Form("0 1-3 * * *", False, lambda w: w.minute == 0 and 1 <= w.hour <= 3),
    Form("5-55/25 0-3 * * *", False, lambda w: w.minute in (5, 30, 55) and w.hour <= 3),
    # Weekday lists (the changes above fall on a Saturday or Sunday).
    Form("0 8 * * 1-5", False, lambda w: _at(8, 0)(w) and 1 <= _sunday_based(w) <= 5),
    Form("0 8 * * mon-fri", False, lambda w: _at(8, 0)(w) and 1 <= _sunday_based(w) <= 5),
    Form("30 1 * * 0", False, lambda w: _at(1, 30)(w) and _sunday_based(w) == 0),
    Form("15 2 * * 7", False, lambda w: _at(2, 15)(w) and _sunday_based(w) == 0),
    Form("30 2 * * sat,sun", False, lambda w: _at(2, 30)(w) and _sunday_based(w) in (0, 6)),
    Form("30 23 * * 6", False, lambda w: _at(23, 30)(w) and _sunday_based(w) == 6),
    Form(
        "*/30 0-2 * * 0",
        True,
        lambda w: w.minute % 30 == 0 and w.hour <= 2 and _sunday_based(w) == 0,
    ),
]


@functools.cache
def _minutes(zone_name: str, at: str) -> list[tuple[datetime, datetime, bool, list[datetime]]]:
    """Each real minute near the change: (UTC, local wall time, repeated?, walls just skipped)."""
    zone = ZoneInfo(zone_name)
    change = datetime.fromisoformat(at).replace(tzinfo=UTC)
    out = []
    moment = change - WINDOW
    previous = (moment - MINUTE).astimezone(zone).replace(tzinfo=None)
    while moment <= change + WINDOW:
        local = moment.astimezone(zone)
        wall = local.replace(tzinfo=None, fold=0)
        skipped = []
        gap = previous + MINUTE
        while gap < wall:  # the clock jumped over these local times
            skipped.append(gap)
            gap += MINUTE
        out.append((moment, wall, local.fold == 1, skipped))
        previous = wall
        moment += MINUTE
    return out


def reference(form: Form, change: Change) -> list[datetime]:
    """cron(8), one real minute at a time (see the module docstring)."""
    fired = []
    for moment, wall, repeated, skipped in _minutes(change.zone, change.at):
        if form.follows_clock:
            fire = form.matches(wall)
        else:
            fire = (form.matches(wall) and not repeated) or any(map(form.matches, skipped))
        if fire:
            fired.append(moment)
    return fired


def _utc(moments: list[datetime]) -> list[datetime]:
    """In UTC: two aware times in one zone compare by wall clock, ignoring ``fold``."""
    return [m.astimezone(UTC) for m in moments]


def _id(value: object) -> str:
    return f"{value.zone}@{value.at}" if isinstance(value, Change) else str(value)


@pytest.mark.parametrize("change", CHANGES, ids=_id)
def test_the_changes_are_where_the_tests_say(change: Change) -> None:
    """Each listed change moves the zone's UTC offset by the stated amount at that instant."""
    zone = ZoneInfo(change.zone)
    at = datetime.fromisoformat(change.at).replace(tzinfo=UTC)
    before = (at - timedelta(seconds=1)).astimezone(zone).utcoffset()
    after = at.astimezone(zone).utcoffset()
    assert before is not None
    assert after is not None
    assert after - before == change.shift


@pytest.mark.timeout(10)
@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.cron)
@pytest.mark.parametrize("change", CHANGES, ids=_id)
def test_occurrences_across_the_change_match_cron(change: Change, form: Form) -> None:
    """Every occurrence a day either side of the change, in order, none repeated, none missing."""
    schedule = Schedule(form.cron, ZoneInfo(change.zone))
    at = datetime.fromisoformat(change.at).replace(tzinfo=UTC)
    want = reference(form, change)

    got = _utc(schedule.occurrences(at - WINDOW - MINUTE, at + WINDOW))

    assert all(a < b for a, b in itertools.pairwise(got)), "not strictly increasing"
    assert got == want
    assert want, "the reference never fired: the form or the window is wrong"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.cron)
@pytest.mark.parametrize("change", CHANGES, ids=_id)
def test_a_search_starting_anywhere_near_the_change_finds_the_rest(
    change: Change, form: Form
) -> None:
    """Starting in the repeated or skipped hour (first or second pass) loses and repeats nothing."""
    schedule = Schedule(form.cron, ZoneInfo(change.zone))
    at = datetime.fromisoformat(change.at).replace(tzinfo=UTC)
    fired = reference(form, change)
    for minutes in range(-150, 151, 4):  # both passes of a repeated hour, either side of a gap
        start = at + timedelta(minutes=minutes, seconds=13)
        end = start + timedelta(hours=2)
        got = _utc(schedule.occurrences(start, end))
        assert got == [m for m in fired if start < m <= end], (
            f"from {start.astimezone(schedule.zone)}"
        )


@pytest.mark.timeout(10)
@pytest.mark.parametrize("cron", ["0 * * * *", "30 1 * * *", "*/15 * * * *", "15 2 * * *"])
@pytest.mark.parametrize("change", CHANGES, ids=_id)
def test_the_latest_occurrence_near_the_change(change: Change, cron: str) -> None:
    """What a digest asks every 30 s: the latest occurrence within its grace, at any minute."""
    form = next(f for f in FORMS if f.cron == cron)
    schedule = Schedule(cron, ZoneInfo(change.zone))
    at = datetime.fromisoformat(change.at).replace(tzinfo=UTC)
    fired = reference(form, change)
    grace = timedelta(hours=2)
    for minutes in range(-180, 181, 5):
        now = at + timedelta(minutes=minutes, seconds=35)
        expected = [m for m in fired if now - grace < m <= now]
        latest = schedule.latest(now, grace)
        assert (latest and latest.astimezone(UTC)) == (expected[-1] if expected else None), now


@pytest.mark.timeout(10)
@pytest.mark.parametrize("cron", ["0 * * * *", "*/15 * * * *", "30 1 * * *", "15 2 * * *"])
@pytest.mark.parametrize("change", CHANGES, ids=_id)
def test_a_rule_job_fires_once_per_occurrence_across_the_change(change: Change, cron: str) -> None:
    """The daemon's rule trigger chained as APScheduler does (from each jittered run): no loop."""
    form = next(f for f in FORMS if f.cron == cron)
    trigger = cron_trigger(cron, change.zone, jitter=5)
    at = datetime.fromisoformat(change.at).replace(tzinfo=UTC)
    start = at - timedelta(hours=30, minutes=-7)  # 7 minutes from any occurrence: jitter is 5 s
    end = at + timedelta(hours=30, minutes=7)
    fired = []
    moment = trigger.get_next_fire_time(None, start)
    while moment is not None and moment <= end:
        fired.append(moment)
        moment = trigger.get_next_fire_time(moment, moment)
    want = [m for m in reference(form, change) if start <= m <= end]
    assert len(fired) == len(want)
    for got, occurrence in zip(fired, want, strict=True):
        assert occurrence <= got <= occurrence + timedelta(seconds=5)
