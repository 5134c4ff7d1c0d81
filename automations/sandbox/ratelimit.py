"""Token bucket per API key (docs/incident-io-api.md section 7).

Capacity equals the per-minute rate and refills continuously (20/s at 1200),
with no fixed window. It runs on real monotonic time, not the sandbox clock,
so advancing the clock never refills the bucket.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    used: int
    retry_after: float  # seconds until one token is available (0 when allowed)
    full_in: float  # seconds until the bucket is full again


class _Bucket:
    def __init__(self, capacity: float, now: float) -> None:
        self.tokens = capacity
        self.stamp = now


class RateLimiter:
    def __init__(self, per_minute: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError("rate_limit_per_minute must be at least 1")
        self.limit = per_minute
        self._rate = per_minute / 60.0
        self._monotonic = monotonic
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> Verdict:
        """Spend one token for ``key`` if there is one."""
        now = self._monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.limit, now)
        bucket.tokens = min(self.limit, bucket.tokens + (now - bucket.stamp) * self._rate)
        bucket.stamp = now
        allowed = bucket.tokens >= 1
        if allowed:
            bucket.tokens -= 1
        remaining = math.floor(bucket.tokens)
        return Verdict(
            allowed=allowed,
            limit=self.limit,
            remaining=remaining,
            used=self.limit - remaining,
            retry_after=0.0 if allowed else (1 - bucket.tokens) / self._rate,
            full_in=(self.limit - bucket.tokens) / self._rate,
        )
