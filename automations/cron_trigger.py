"""A crontab(5) schedule as an APScheduler trigger, for the daemon's rule and digest jobs.

APScheduler 3's own CronTrigger reads cron differently (Monday is 0, both day
fields must match, no DST rule of cron's), so the daemon's jobs fire at the
instants automations.schedules computes, the same ones `once` and the digest
outbox use.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger

from automations.schedules import CronSchedule

_TICK = timedelta(microseconds=1)


class CronScheduleTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler has no type hints
    """Fires at each occurrence of ``schedule``, up to ``jitter`` seconds after it."""

    __slots__ = ("jitter", "schedule")

    def __init__(self, schedule: CronSchedule, jitter: int | None = None) -> None:
        self.schedule = schedule
        self.jitter = jitter

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """After the previous (possibly jittered) run, or at or after ``now`` for a new job."""
        after = previous_fire_time if previous_fire_time is not None else now - _TICK
        found = self.schedule.next_after(after)
        jittered: datetime | None = self._apply_jitter(found, self.jitter, now)
        return jittered

    def __str__(self) -> str:
        return f"cron[{self.schedule.cron} {self.schedule.zone.key}]"


def cron_trigger(cron: str, timezone: str, *, jitter: int | None = None) -> CronScheduleTrigger:
    """A rule's cron job trigger."""
    return CronScheduleTrigger(CronSchedule(cron, ZoneInfo(timezone)), jitter)
