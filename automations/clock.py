"""The product's one clock: the API's time, learned from its ``Date`` header.

Every "now" the product uses (rule ages, digest windows, ``history --since``,
``test-rule``) comes from here, so a host with a skewed clock cannot escalate
early or late, and the sandbox's moved clock is honoured everywhere. The
offset between API and host is remembered in the ledger, so commands that make
no request (``history``, ``test-rule``) measure against the same "now" as the
daemon that wrote the ledger. This module is the only place that reads the
wall clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

Clock = Callable[[], datetime]

# The Date header has one-second resolution: smaller changes of the offset are noise.
REMEMBER_CHANGE = timedelta(seconds=2)


def host_now() -> datetime:
    """The wall clock: read here only."""
    return datetime.now(UTC)


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
