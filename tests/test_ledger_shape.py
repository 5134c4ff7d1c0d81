"""The ledger is one object per table on one connection, not a class of mixins (issue 16)."""

from __future__ import annotations

from pathlib import Path

from automations.ledger import Ledger
from automations.ledger.base import Table
from automations.notify.spec import QueuedNotice
from tests.notify_support import notice

TABLES = (
    "events",
    "notifications",
    "runs",
    "outbox",
    "catalog",
    "webhooks",
    "meta",
    "kill_switch",
    "retention",
    "quarantine",
)


def test_each_table_is_its_own_object_on_the_one_connection(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.db") as ledger:
        for name in TABLES:
            table = getattr(ledger, name)
            assert isinstance(table, Table), name
            assert table._db is ledger.database, name
    # No mixins: nothing inherited from the ledger's modules (Closing gives it ``with``).
    assert [c.__module__ for c in Ledger.__mro__[1:]] == ["automations.closing", "abc", "builtins"]


def test_the_ledger_itself_only_opens_closes_and_describes() -> None:
    """A table's method on Ledger would bring the mixins back by another door."""
    own = {name for name in vars(Ledger) if not name.startswith("_")}
    assert own == {
        "open",
        "name",
        "path",
        "engine",
        "applied_migrations",
        "tables",
        "acquire_lock",
        "locked",
        "close",
    }


def test_a_claim_recorded_through_events_queues_through_notifications(tmp_path: Path) -> None:
    """The tables that change together still share one transaction (events -> notifications)."""
    key = "r/1/0"
    with Ledger(tmp_path / "ledger.db") as ledger:
        assert ledger.events.claim(
            rule="r",
            incident_id="1",
            incident_reference="INC-1",
            event_key=key,
            reason="test",
            request_body=None,
        )
        queue = [QueuedNotice("ops", notice(key))]
        ledger.events.mark_applied(key, request_id=None, notices=queue)
        [queued] = ledger.notifications.history(event_keys=[key])
        assert (queued.channel, queued.event_key) == ("ops", key)
