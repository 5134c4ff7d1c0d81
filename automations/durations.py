"""Durations as people write them in TOML (``90s``, ``15m``, ``2h``, ``7d``, ``1h30m``),
and spans and moments as people read them in reasons, logs and digests."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
HINT = "a duration like 90s, 15m, 2h, 7d or 1h30m"
# Far beyond any schedule, window or age, and far from datetime's limits: now plus or minus
# it, even tripled (the default stale_after), is a date. Larger ones were a typo or an attack.
LONGEST = timedelta(days=36_500)
_LONGEST_TEXT = "36500d (100 years)"
_DIGITS = 12  # a number this long is already beyond LONGEST in seconds; int() of more is slow


def parse_duration(text: str) -> timedelta:
    """Parse ``1h30m``; raise ValueError with the hint users need."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not match or not any(match.groups()):
        raise ValueError(f"{_shown(text)} is not {HINT}")
    too_long = ValueError(f"{_shown(text)} is longer than {_LONGEST_TEXT}, the longest allowed")
    if any(len(value) > _DIGITS for value in match.groups() if value):
        raise too_long
    pairs = zip(match.groups(), _UNITS.values(), strict=True)
    seconds = sum(int(value) * unit for value, unit in pairs if value)
    if seconds == 0:
        raise ValueError(f"{_shown(text)} is zero; use {HINT}")
    if seconds > LONGEST.total_seconds():
        raise too_long
    return timedelta(seconds=seconds)


def _shown(text: object) -> str:
    """The value as written, cut short: a message is one readable line."""
    if isinstance(text, str) and len(text) > 32:
        return repr(f"{text[:29]}...")
    return repr(text)


def format_duration(delta: timedelta) -> str:
    """The shortest ``1d2h`` form, for reasons and logs."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in _UNITS.items():
        if unit == "w":
            continue
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def human_span(delta: timedelta) -> str:
    """'3d 4h', '2h 5m', '12m', '<1m': two units at most, never seconds.

    Days and hours for a day or more, hours and minutes below; truncated, so a
    span is never overstated ("1h 59m" until the second hour is complete).
    """
    minutes = max(int(delta.total_seconds()), 0) // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {mins}m" if mins else f"{hours}h"
    return f"{mins}m" if mins else "<1m"


def human_moment(moment: datetime, now: datetime) -> str:
    """'09:12 UTC' on the same UTC day as ``now``, else '24 Nov 03:10 UTC' (with the year
    when it differs). Rules have no display timezone, so moments in reasons are UTC."""
    at, today = moment.astimezone(UTC), now.astimezone(UTC)
    if at.date() == today.date():
        return at.strftime("%H:%M UTC")
    if at.year == today.year:
        return f"{at.day} {at.strftime('%b %H:%M')} UTC"
    return f"{at.day} {at.strftime('%b %Y %H:%M')} UTC"


def _validate(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        shown = str(value).lower() if isinstance(value, bool) else repr(value)  # TOML's true
        raise ValueError(f"{shown} is not {HINT} (write it in quotes)")
    return parse_duration(value)


Duration = Annotated[
    timedelta,
    BeforeValidator(_validate),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?$",
            "description": HINT,
            "examples": ["90s", "15m", "2h", "7d", "1h30m"],
        }
    ),
]
