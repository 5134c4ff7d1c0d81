"""The product's one clock: the API's time, learned from its ``Date`` header.

Every "now" the product uses (rule ages, digest windows, ``history --since``,
``test-rule``) comes from here, so a host with a skewed clock cannot escalate
early or late, and the sandbox's moved clock is honoured everywhere. The
offset between API and host is remembered in the ledger, so commands that make
no request (``history``, ``test-rule``) measure against the same "now" as the
daemon that wrote the ledger. This module is the only place that reads the
wall clock.

The API's time is trusted only within ``max_clock_skew`` of the host's
(default 24 hours: a host with a wrong timezone is still corrected, a Date
header from 2029 is not believed). Beyond it the client refuses the answer
(``ClockSkew``), so ``ServerClock`` never adopts such a time and no rule acts
on it: when two clocks disagree by days, either may be the broken one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from automations.durations import format_duration

Clock = Callable[[], datetime]

# The Date header has one-second resolution: smaller changes of the offset are noise.
REMEMBER_CHANGE = timedelta(seconds=2)
DEFAULT_MAX_SKEW = timedelta(hours=24)


def rfc3339(moment: datetime) -> str:
    """'2026-11-23T08:00:00Z': whole seconds, UTC, nothing a query string must escape."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def host_now() -> datetime:
    """The wall clock: read here only."""
    return datetime.now(UTC)


def skew_problem(server: datetime, bound: timedelta | None) -> str | None:
    """Why ``server`` (an API ``Date``) cannot be "now", or None when it is close enough.

    ``bound`` None means any skew is followed (the setting ``max_clock_skew = "off"``).
    """
    if bound is None:
        return None
    host = host_now()
    server = server.astimezone(UTC)
    skew = server - host
    if abs(skew) <= bound:
        return None
    direction = "ahead of" if skew > timedelta(0) else "behind"
    return (
        f"the API's clock (Date: {server:%Y-%m-%d %H:%M:%S}Z) is {format_duration(abs(skew))} "
        f"{direction} this host's ({host:%Y-%m-%d %H:%M:%S}Z), more than [incident_io] "
        f"max_clock_skew = {format_duration(bound)}; nothing is done until they agree: fix the "
        "host's clock (NTP) or check what answers at base_url (a sandbox whose clock was moved "
        'on purpose needs a larger max_clock_skew, or "off")'
    )


class _HasServerTime(Protocol):
    @property
    def server_time(self) -> datetime | None: ...


class OffsetStore(Protocol):
    """Where the API-minus-host offset survives between processes (the ledger)."""

    def clock_offset(self) -> timedelta | None: ...

    def save_clock_offset(self, offset: timedelta) -> None: ...


class ServerClock:
    """Server time from the last response, advanced by host time since.

    Before the first response it uses the offset remembered in ``store``, so a
    command that starts offline agrees with the daemon that ran before it.
    The client hands it only Date headers within ``max_clock_skew`` (see
    ``skew_problem``), so an absurd one never becomes "now" nor is remembered.
    """

    def __init__(self, client: _HasServerTime | None, store: OffsetStore | None = None) -> None:
        self.client = client
        self.store = store
        self._seen: datetime | None = None
        self._offset = (store.clock_offset() if store is not None else None) or timedelta(0)
        self._remembered = self._offset
        self._lock = threading.Lock()

    @property
    def offset(self) -> timedelta:
        """API time minus host time, as last learned."""
        return self._offset

    def __call__(self) -> datetime:
        local = host_now()
        server = self.client.server_time if self.client is not None else None
        with self._lock:
            if server is not None and server != self._seen:
                self._seen = server
                self._offset = server - local
                self._remember()
            return local + self._offset

    def _remember(self) -> None:
        if self.store is None or abs(self._offset - self._remembered) < REMEMBER_CHANGE:
            return
        self.store.save_clock_offset(self._offset)
        self._remembered = self._offset


def ledger_clock(store: OffsetStore) -> ServerClock:
    """The clock of a command that makes no API request: host time plus the remembered offset."""
    return ServerClock(None, store)
