"""Cron expressions and timezones as config types, checked when the file is read.

Shared by rules and digests, so "61 * * * *" or "Mars/Olympus" stop the
daemon at start-up with the key's path instead of surfacing when the
scheduler first fires. APScheduler is imported only when a cron is present.
"""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{value!r} is not an IANA timezone like Europe/London or America/New_York"
        ) from None
    return value


def check_cron(value: str) -> str:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value, timezone="UTC")
    except ValueError as exc:
        raise ValueError(
            f"{value!r} is not a cron expression like '0 8 * * mon-fri' ({exc})"
        ) from None
    return value


TimeZoneName = Annotated[str, AfterValidator(check_timezone)]
CronExpression = Annotated[str, AfterValidator(check_cron)]
