"""One clock for the product: the API's time, remembered in the ledger for offline commands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from automations.clock import ServerClock, host_now, ledger_clock
from automations.ledger import Ledger


@dataclass
class FakeServer:
    """Stands in for the client: only the last ``Date`` header matters to the clock."""

    server_time: datetime | None = None


def test_server_clock_follows_the_api_and_remembers_the_offset(tmp_path: Path) -> None:
    """A year-off API clock is followed, and the offset is saved for the next process."""
    server = FakeServer()
    with Ledger(tmp_path / "ledger.db") as ledger:
        clock = ServerClock(server, ledger.meta)
        assert abs(clock() - host_now()) < timedelta(seconds=1)  # nothing learned yet

        server.server_time = host_now() - timedelta(days=365)
        assert abs(clock() - server.server_time) < timedelta(seconds=1)

    with Ledger(tmp_path / "ledger.db") as reopened:
        offline = ledger_clock(reopened.meta)
        assert abs(offline() - (host_now() - timedelta(days=365))) < timedelta(seconds=2)


def test_small_offset_changes_are_not_written(tmp_path: Path) -> None:
    """The Date header's one-second resolution does not turn into a write per request."""
    server = FakeServer()
    with Ledger(tmp_path / "ledger.db") as ledger:
        clock = ServerClock(server, ledger.meta)
        server.server_time = host_now() + timedelta(hours=1)
        clock()
        first = ledger.meta.clock_offset()
        server.server_time = server.server_time + timedelta(milliseconds=900)
        clock()
        assert ledger.meta.clock_offset() == first
        assert first is not None
        assert abs(first - timedelta(hours=1)) < timedelta(seconds=1)


def test_a_new_ledger_falls_back_to_the_host_clock(tmp_path: Path) -> None:
    """With no offset remembered, an offline command uses the host's time."""
    with Ledger(tmp_path / "ledger.db") as ledger:
        assert ledger.meta.clock_offset() is None
        assert abs(ledger_clock(ledger.meta)() - host_now()) < timedelta(seconds=1)
