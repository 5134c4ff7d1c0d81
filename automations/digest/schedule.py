"""Which period a digest is for: the latest cron occurrence, found the same way at any time.

A digest's *period* is the scheduled instant it stands for (``2026-11-23T08:00:00+00:00``
in the digest's timezone). Whether the cron job fires on time, late, or the
daemon starts after being down, the question is the same: what is the latest
occurrence at or before now, within the grace? So a daemon that was down for
three runs sends one digest (for the latest), not three. The occurrences are
the rules' (automations.schedules): crontab(5), with cron(8)'s DST rules.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from automations.schedules import CronSchedule

if TYPE_CHECKING:
    from automations.cron_trigger import CronScheduleTrigger


# Later than now by more than this is "in the future": a period queued while the host clock
# was ahead. Within it, a clock stepped back a little (NTP) still counts what it just sent.
FUTURE_TOLERANCE = timedelta(minutes=5)


def period_key(moment: datetime, zone: ZoneInfo) -> str:
    """The outbox's period text: ISO 8601 in the digest's zone, to the second."""
    return moment.astimezone(zone).replace(microsecond=0).isoformat()


def period_instant(period: str) -> datetime | None:
    """The instant a period's text stands for; None for a key that is not one."""
    try:
        moment = datetime.fromisoformat(period)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def in_future(moment: datetime, now: datetime) -> bool:
    """Later than ``now`` by more than the tolerance: written by a clock that was ahead."""
    return moment > now + FUTURE_TOLERANCE


class Schedule(CronSchedule):
    """A digest's cron in its timezone; its daemon job fires without jitter."""

    @cached_property
    def trigger(self) -> CronScheduleTrigger:
        from automations.cron_trigger import CronScheduleTrigger

        return CronScheduleTrigger(self)

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
