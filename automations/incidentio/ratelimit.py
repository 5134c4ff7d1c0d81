"""A client-side token bucket, so the daemon stays under the API's rate limit.

The API allows 1200 requests a minute per key (a bucket refilled at 20/s);
the daemon aims lower (1000/min by default) to leave room for other users of
the key. One bucket is shared by every client in the process, and every HTTP
attempt, retries included, takes a token.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class TokenBucket:
    """Thread-safe; ``acquire()`` blocks until a token is free.

    Tokens are reserved under the lock and waited for outside it: the balance
    may go negative, and each caller sleeps for its own place in the queue, so
    threads are served in order and nobody sleeps holding the lock.
    """

    def __init__(
        self,
        rate_per_minute: float = 1000,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_minute <= 0:
            raise ValueError(f"rate_per_minute must be positive, got {rate_per_minute}")
        if burst is not None and burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.rate_per_minute = float(rate_per_minute)
        self._per_second = self.rate_per_minute / 60.0
        # One second's worth by default: an idle daemon waking up should not
        # spend the key's whole allowance (shared with other tools) in a burst.
        self.capacity = burst if burst is not None else max(1, math.ceil(self._per_second))
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(self.capacity)
        self._updated = clock()
        self.waits = 0
        self.waited_seconds = 0.0

    def acquire(self, stop: threading.Event | None = None) -> float:
        """Take one token, sleeping first if none is free; returns the seconds waited.

        After a 429 the wait can be the whole Retry-After (see ``defer``): given a
        ``stop`` event, it waits on that instead of sleeping, so a stopping daemon
        is not held back; the token is taken all the same.
        """
        with self._lock:
            self._refill()
            self._tokens -= 1.0
            wait = -self._tokens / self._per_second if self._tokens < 0 else 0.0
            if wait > 0:
                self.waits += 1
                self.waited_seconds += wait
        if wait > 0:
            if stop is None:
                self._sleep(wait)
            else:
                stop.wait(wait)
        return wait

    def defer(self, seconds: float) -> None:
        """Hand out no token for ``seconds`` (the server said 429: every thread should pause)."""
        if seconds <= 0:
            return
        with self._lock:
            self._refill()
            self._tokens = min(self._tokens, -seconds * self._per_second)

    @property
    def available(self) -> float:
        """Tokens free now (negative while callers are queued)."""
        with self._lock:
            self._refill()
            return self._tokens

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        self._tokens = min(float(self.capacity), self._tokens + elapsed * self._per_second)

    def __repr__(self) -> str:
        return f"TokenBucket(rate_per_minute={self.rate_per_minute:g}, burst={self.capacity})"
