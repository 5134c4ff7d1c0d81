"""When the seeded incidents happened: the history's shape in time.

A few incidents from today, most from the last eight weeks at a varied daily
rate (so a digest's trends have something to show), the rest up to 180 days
old. Counted back from the sandbox's now, never from its weekday.
"""

from __future__ import annotations

import math
import random

MIN_AGE_S = 120.0
MAX_AGE_S = 180 * 86400.0
# The history's shape: a few incidents from today, most from the last eight weeks (so a
# digest's trends have something to show), the rest older.
YOUNG_SHARE = 0.05
TREND_SHARE = 0.75
TREND_DAYS = 57  # 8 weeks and a day: whatever the weekday, the 8 weeks shown are covered
WEEK_WEIGHTS = (1.0, 1.5, 0.7, 1.2, 2.0, 0.9, 1.4, 0.8, 1.1)  # by week back from now
QUIET_DAYS = (2, 3)  # days back, modulo 7
QUIET_DAY_WEIGHT = 0.35


def _log_uniform(position: float, low: float, high: float) -> float:
    return math.exp(math.log(low) + position * (math.log(high) - math.log(low)))


def _day_weights() -> list[float]:
    """How busy each of the last TREND_DAYS days was (day 1 = yesterday): some weeks are
    busier than others, and two days in seven are quiet. Counted back from the sandbox's
    now, never from its weekday: the history (and its IDs) must not depend on the clock."""
    return [
        WEEK_WEIGHTS[day // 7] * (QUIET_DAY_WEIGHT if day % 7 in QUIET_DAYS else 1.0)
        for day in range(1, TREND_DAYS)
    ]


def history_ages(rng: random.Random, count: int) -> list[float]:
    """Incident ages in seconds, oldest first: a few from today (the youngest minutes old),
    most from the last eight weeks at a varied daily rate, the rest up to 180 days old.

    Three draws per incident, whichever share it falls in, so the rest of the
    history draws the same numbers whatever the shares.
    """
    days = _day_weights()
    total = sum(days)
    ages = []
    for _ in range(count):
        share, first, second = rng.random(), rng.random(), rng.random()
        if share < YOUNG_SHARE:
            ages.append(_log_uniform(first, MIN_AGE_S, 86400.0))
        elif share < YOUNG_SHARE + TREND_SHARE:
            point, day = first * total, 0
            while day < len(days) - 1 and point >= days[day]:
                point -= days[day]
                day += 1
            ages.append((day + 1 + second) * 86400.0)
        else:
            ages.append(_log_uniform(first, TREND_DAYS * 86400.0, MAX_AGE_S))
    return sorted(ages, reverse=True)
