"""The time rules are evaluated at: the API's own clock when known.

Using the server's ``Date`` header means a host with a skewed clock cannot
escalate early or late, and the sandbox's moved clock is honoured in tests.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class _HasServerTime(Protocol):
    @property
    def server_time(self) -> datetime | None: ...


class ServerClock:
    """Server time from the last response, advanced by local time since."""

    def __init__(self, client: _HasServerTime) -> None:
        self.client = client
        self._seen: datetime | None = None
        self._offset = timedelta(0)

    def __call__(self) -> datetime:
        server = self.client.server_time
        local = datetime.now(UTC)
        if server is not None and server != self._seen:
            self._seen = server
            self._offset = server - local
        return local + self._offset


def host_now() -> datetime:
    """The wall clock: read here only."""
    return datetime.now(UTC)
