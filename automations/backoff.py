"""Retry delays shared by the two outboxes (digests and notifications)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Backoff:
    """Retry delays: ``first``, doubling per attempt, never more than ``longest``."""

    first: timedelta
    longest: timedelta

    def after(self, attempts: int) -> timedelta:
        # Doubled only while below the longest wait: a day doubled 30 times is no date.
        delay = self.first
        for _ in range(max(attempts - 1, 0)):
            if delay >= self.longest:
                break
            delay *= 2
        return min(delay, self.longest)
