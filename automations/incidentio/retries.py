"""When to retry an API call, how long to wait, and how it is logged.

stamina runs the loop (attempts, total timeout, sleeping, test mode); this
module is its backoff hook. Only ``APIUnavailable`` is retried. The wait is
exponential with jitter; after a ``Retry-After`` it is the larger of the two:
earlier would only earn another 429, and a ``Retry-After`` of 0 or a date in
the past (clock skew) must not become a hot loop. ``Retry-After`` is capped so
a bogus "come back tomorrow" cannot park a daemon thread, and a wait that
would overrun the call's total budget gives up at once instead of sleeping
only to fail.

A daemon's calls run in scheduler threads, where only an event can cut a wait
short: given a ``stop`` event, the hook waits on it itself (and tells stamina
to sleep 0), so SIGTERM ends a Retry-After of minutes at once and the call
fails with its last error. Without one (``once``, ``plan``: the main thread,
where Ctrl-C interrupts a sleep) stamina sleeps as usual.

Each call logs once (WARNING when it finally fails, INFO when it needed
retries), so stamina's own per-retry hook is told to skip this client. stamina
keeps its hooks process-wide (``stamina.retry`` takes none per call), so that
is the one global set-up: ``quiet_stamina_for_client``, idempotent, called by
the composition root (``automations.runtime.make_client``), never at import.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import stamina
from stamina.instrumentation import RetryDetails, RetryHook

from automations.errors import APIUnavailable

LOG = logging.getLogger(__name__)

MAX_RETRY_AFTER = 300.0

# stamina names a retried callable by module and qualname; see caller.py.
RETRIED_CALLABLE = "automations.incidentio.caller.APICaller._attempt"


@dataclass
class CallState:
    """What one logical call has been through, for its single log line."""

    method: str
    route: str
    started: float = field(default_factory=time.monotonic)
    attempts: int = 0
    waited: float = 0.0
    statuses: list[str] = field(default_factory=list)
    abandoned: bool = False  # a stop cut the retry wait short

    @property
    def statuses_text(self) -> str:
        return ",".join(self.statuses) or "none"


@dataclass(frozen=True)
class Budget:
    """How long one call may take in all: attempts, total retry time, per-request timeouts."""

    attempts: int
    timeout: float
    request_timeout: float
    connect_timeout: float | None = None


# A daemon rides out an outage: the config's attempts and timeout, two minutes per call.
DAEMON = Budget(attempts=30, timeout=120.0, request_timeout=300.0)
# A person waiting at a terminal (validate, plan, digest preview): give up within 10 s.
INTERACTIVE = Budget(attempts=3, timeout=8.0, request_timeout=8.0, connect_timeout=3.0)


@dataclass(frozen=True)
class RetryWaits:
    """Seconds between attempts: ``initial`` doubling up to ``cap``, plus up to ``jitter``."""

    initial: float = 0.5
    cap: float = 30.0
    jitter: float = 1.0


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8
    timeout: float = 120.0
    waits: RetryWaits = RetryWaits()

    def wait(
        self, call: CallState, exc: Exception, *, stop: threading.Event | None = None
    ) -> bool | float:
        """stamina's backoff hook: False (raise now) or seconds to wait before the next try."""
        if not isinstance(exc, APIUnavailable) or call.attempts >= self.attempts:
            return False
        wait = min(self.waits.cap, self.waits.initial * 2.0 ** (call.attempts - 1))
        wait += random.uniform(0, self.waits.jitter)
        if exc.retry_after is not None:
            wait = max(wait, min(exc.retry_after, MAX_RETRY_AFTER))
        if time.monotonic() - call.started + wait > self.timeout:
            return False
        LOG.debug("%s %s: attempt %d failed (%s); retrying in %.2fs",
                  call.method, call.route, call.attempts, exc, wait)  # fmt: skip
        if stop is None or stamina.is_testing():
            call.waited += wait
            return wait  # stamina sleeps it (in its test mode, skips it)
        started = time.monotonic()
        stopped = stop.wait(wait)
        call.waited += time.monotonic() - started
        call.abandoned = stopped
        return False if stopped else 0.0  # waited here already


def log_outcome(call: CallState, error: Exception | None) -> None:
    """The one line per call: a failure, or a success that needed retries."""
    if error is not None:
        LOG.warning(
            "%s %s failed after %d attempt(s) (statuses %s, waited %.1fs%s): %s",
            call.method, call.route, call.attempts, call.statuses_text, call.waited,
            ", retries abandoned: stopping" if call.abandoned else "", error,
        )  # fmt: skip
    elif call.attempts > 1:
        LOG.info(
            "%s %s succeeded after %d attempts (statuses %s, waited %.1fs)",
            call.method, call.route, call.attempts, call.statuses_text, call.waited,
        )  # fmt: skip


class _SkipClientRetries:
    """Wraps a stamina retry hook so it ignores this client's retries.

    stamina's hooks are process-wide, so each existing hook is wrapped, not
    replaced: other stamina users keep their per-retry logs and metrics.
    """

    def __init__(self, hook: RetryHook) -> None:
        self.hook = hook

    def __call__(self, details: RetryDetails) -> Any:
        if details.name == RETRIED_CALLABLE:
            return None
        return self.hook(details)


_HOOKS_LOCK = threading.Lock()


def quiet_stamina_for_client() -> None:
    """Wrap stamina's process-wide retry hooks to skip this client's calls; idempotent.

    The composition root calls it before building a client (``make_client``); a client
    built without it works the same, only stamina also logs each of its retries.
    """
    with _HOOKS_LOCK:
        hooks = stamina.instrumentation.get_on_retry_hooks()
        if all(isinstance(h, _SkipClientRetries) for h in hooks):
            return
        stamina.instrumentation.set_on_retry_hooks(
            [h if isinstance(h, _SkipClientRetries) else _SkipClientRetries(h) for h in hooks]
        )
