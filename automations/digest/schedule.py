"""Which period a digest is for: the latest cron occurrence, found the same way at any time.

A digest's *period* is the scheduled instant it stands for (``2026-11-23T08:00:00+00:00``
in the digest's timezone). Whether the cron job fires on time, late, or the
daemon starts after being down, the question is the same: what is the latest
occurrence at or before now, within the grace? So a daemon that was down for
three runs sends one digest (for the latest), not three.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

_TICK = timedelta(microseconds=1)


def period_key(moment: datetime, zone: ZoneInfo) -> str:
    """The outbox's period text: ISO 8601 in the digest's zone, to the second."""
    return moment.astimezone(zone).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class Schedule:
    """A cron expression in a timezone (APScheduler's trigger, without jitter)."""

    cron: str
    zone: ZoneInfo

    @cached_property
    def trigger(self) -> Any:
        from apscheduler.triggers.cron import CronTrigger

        return CronTrigger.from_crontab(self.cron, timezone=self.zone)

    def next_at_or_after(self, moment: datetime) -> datetime | None:
        """The first occurrence at or after ``moment``."""
        found: datetime | None = self.trigger.get_next_fire_time(None, moment)
        return found

    def occurrences(self, start: datetime, end: datetime) -> list[datetime]:
        """Occurrences in ``(start, end]``, oldest first."""
        trigger = self.trigger
        out: list[datetime] = []
        moment = trigger.get_next_fire_time(None, start + _TICK)
        while moment is not None and moment <= end:
            out.append(moment)
            moment = trigger.get_next_fire_time(None, moment + _TICK)
        return out

    def latest(self, now: datetime, within: timedelta) -> datetime | None:
        """The latest occurrence in ``(now - within, now]``, or None.

        Searches backwards in doubling windows, so an every-minute cron with a
        week of grace costs a few steps, not ten thousand.
        """
        span = timedelta(minutes=1)
        while True:
            span = min(span, within)
            found = self.occurrences(now - span, now)
            if found:
                return found[-1]
            if span >= within:
                return None
            span *= 2
