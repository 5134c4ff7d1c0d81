"""The ledger: every processed event, every run, the catalog cache and the outboxes.

It is what makes the daemon safe to restart: an action is claimed here before
its side effect and confirmed after, so it happens at most once, ever. It lives
in a SQLite file (the default) or a PostgreSQL database shared by replicas; one
class, one set of table modules, the same SQL on both.

    base.py         open and migrate, thread lock, driver errors -> LedgerError
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
from automations.ledger.pause import Pause, PauseStore
from automations.ledger.quarantine import Quarantined
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


class Ledger(
    EventStore,
    NotificationStore,
    RunStore,
    CatalogStore,
    OutboxStore,
    MetaStore,
    RetentionStore,
    PauseStore,
    WebhookDeliveryStore,
):
    """One ledger (a file, ``":memory:"``, or a ``postgresql://`` URL), safe to share between
    scheduler threads.

    Opening creates the file or the tables if needed and applies pending migrations. Call
    ``Ledger(path, lock=True)`` in a daemon so a second one on the same file refuses to start
    (on PostgreSQL the leader lock does that job; ``lock`` is ignored there).
    """
