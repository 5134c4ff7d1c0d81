"""The ledger: every processed event, every run, the catalog cache and the outboxes.

It is what makes the daemon safe to restart: an action is claimed here before
its side effect and confirmed after, so it happens at most once, ever. It lives
in a SQLite file (the default) or a PostgreSQL database shared by replicas; one
``Ledger`` holding one object per table (``ledger.events``, ``ledger.runs``, ...),
the same SQL on both.

    base.py         the shared connection (Database): open and migrate, thread lock, driver
                    errors -> LedgerError; Table, what each table object builds on
    backend.py      the connection behind a small object per engine
    sqlite.py       SQLite via sqlite-utils: WAL, busy timeout, the one-daemon file lock
    postgres.py     PostgreSQL via psycopg 3: placeholders, the write lock, reconnecting
    migrations.py   the schema, as sqlite-utils named migrations
    pg_migrations.py  the same migrations for PostgreSQL
    copy.py         `ledger copy`: one ledger into another, empty one, all or nothing
    filelock.py     the one-daemon lock, on the database file itself
    events.py       claim / mark_* / release / history
    runs.py         one row per cycle
    catalog.py      last good severities, statuses, ...
    outbox.py       rendered digests waiting for SMTP
    notifications.py  one row per (event, channel), queued with the action, sent by the outbox
    lease.py        one sender per outbox row: claim with an owner and a lease (both outboxes)
    quarantine.py   rows that cannot be decoded, copied aside and reported once
    owners.py       which process claimed an event or started a run, and is it alive
    meta.py         small facts, e.g. the API clock's offset from the host's
    retention.py    forgetting old rows (what may go: automations/retention.py)
    pause.py        the kill switch's flag (`automations pause` / `resume`)
    webhooks.py     verified incident.io deliveries, queued for the webhook worker
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from automations.closing import Closing
from automations.ledger.base import Database
from automations.ledger.catalog import CatalogStore
from automations.ledger.events import Event, EventState, EventStore
from automations.ledger.meta import MetaStore
from automations.ledger.notifications import (
    HeldBatch,
    Notification,
    NotificationState,
    NotificationStore,
)
from automations.ledger.outbox import OutboxItem, OutboxState, OutboxStore
from automations.ledger.pause import KillSwitch, Pause
from automations.ledger.quarantine import Quarantine, Quarantined
from automations.ledger.retention import Pruned, RetentionStore
from automations.ledger.runs import Run, RunStatus, RunStore
from automations.ledger.webhooks import (
    WebhookDelivery,
    WebhookDeliveryState,
    WebhookDeliveryStore,
)

__all__ = [
    "Event",
    "EventState",
    "HeldBatch",
    "Ledger",
    "Notification",
    "NotificationState",
    "OutboxItem",
    "OutboxState",
    "Pause",
    "Pruned",
    "Quarantined",
    "Run",
    "RunStatus",
    "WebhookDelivery",
    "WebhookDeliveryState",
]


class Ledger(Closing):
    """One ledger (a file, ``":memory:"``, or a ``postgresql://`` URL), safe to share between
    scheduler threads: one connection, and one object per table (or group of tables) on it.

        ledger.events         claims and their outcomes (events.py)
        ledger.notifications  one row per (event, channel), queued with the outcome
        ledger.runs           one row per cycle
        ledger.outbox         rendered digests waiting for SMTP
        ledger.catalog        last good severities, statuses, ...
        ledger.webhooks       verified incident.io deliveries for the webhook worker
        ledger.meta           small facts: the API clock's offset, the link key
        ledger.kill_switch    ``automations pause`` / ``resume``
        ledger.retention      forgetting old rows
        ledger.quarantine     rows that could not be decoded

    Opening creates the file or the tables if needed and applies pending migrations. Call
    ``Ledger(path, lock=True)`` in a daemon so a second one on the same file refuses to start
    (on PostgreSQL the leader lock does that job; ``lock`` is ignored there).
    """

    def __init__(self, where: str | Path, *, busy_timeout: float = 5.0, lock: bool = False) -> None:
        #: The shared connection the tables run their SQL through (``ledger copy`` and tests
        #: use it directly).
        self.database = db = Database(where, busy_timeout=busy_timeout, lock=lock)
        self.quarantine = Quarantine(db)
        self.notifications = NotificationStore(db, self.quarantine)
        self.events = EventStore(db, self.quarantine, self.notifications)
        self.runs = RunStore(db, self.quarantine)
        self.outbox = OutboxStore(db, self.quarantine)
        self.catalog = CatalogStore(db)
        self.webhooks = WebhookDeliveryStore(db)
        self.meta = MetaStore(db)
        self.kill_switch = KillSwitch(db)
        self.retention = RetentionStore(db)

    @classmethod
    def open(cls, where: str | Path, *, busy_timeout: float = 5.0, lock: bool = False) -> Self:
        """Open (creating and migrating if needed) the ledger at ``where``: a SQLite file
        path, ``":memory:"``, or a ``postgresql://`` URL.

        ``lock`` takes SQLite's one-daemon lock first, or raises LedgerLocked without
        opening the database. On PostgreSQL it does nothing: several replicas share the
        database, and the leader lock (not the ledger) decides which one acts.
        """
        return cls(where, busy_timeout=busy_timeout, lock=lock)

    @property
    def name(self) -> str:
        """The ledger as messages name it: the file, or the URL without its password."""
        return self.database.name

    @property
    def path(self) -> Path | None:
        """The SQLite file; None in memory and on PostgreSQL."""
        return self.database.backend.file

    @property
    def engine(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.database.backend.engine

    def applied_migrations(self) -> list[str]:
        """Names of the migrations this ledger has had, in the order applied."""
        with self.database.guard("listing migrations"):
            return self.database.backend.applied_migrations()

    def tables(self) -> list[str]:
        """The ledger's tables, each after those it references (``ledger copy``'s order)."""
        with self.database.guard("listing tables"):
            return self.database.backend.tables()

    def acquire_lock(self) -> None:
        """Hold the one-daemon lock on the database file until ``close()``, else LedgerLocked.

        ``Ledger(path, lock=True)`` takes it before the database is opened, which is
        better (see filelock.py); this takes it on a ledger already open. A no-op on
        PostgreSQL (see ``open``).
        """
        self.database.acquire_lock()

    @property
    def locked(self) -> bool:
        """Whether this ledger holds SQLite's one-daemon lock (never on PostgreSQL)."""
        return self.database.backend.locked

    def close(self) -> None:
        """Close the connection and release the daemon lock; safe to call twice."""
        self.database.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
