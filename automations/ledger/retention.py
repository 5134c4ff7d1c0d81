"""Retention's SQL: forgetting old rows (which incidents may go: automations/retention.py).

Everything here keeps what still guards something: unconfirmed (planned)
events, the newest finished-OK run of each rule and of each schedule (``plan``'s
"never run" hint and ``last_successful_run`` read them; of the old runs, the
newest OK one of each is kept, so these survive however long ago they ran), runs
still marked running, each digest's newest outbox item and any item not
finished (pending, sending). Notifications go with their event (a forgotten
incident's events take their finished notifications along); summaries, and rows
whose event is gone, go by age once finished. Every query starts from an index
on time, so a prune costs what is old, not the ledger's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from automations.ledger.base import Table, from_text, to_text
from automations.ledger.notifications import FINISHED as FINISHED_NOTIFICATIONS

PRUNED_AT = "retention_pruned_at"
CURSOR = "retention_cursor"  # where the walk over old events stopped: "claimed_at|id"
SCAN_ROWS = 5_000  # old events looked at per prune
BATCH = 10_000  # rows per table per prune: a first prune of a big ledger spreads over runs
# Outbox states that are final: nothing will send the item again.
FINISHED_OUTBOX = ("sent", "failed", "expired")


def moved_since(at: str, table: str = "") -> str:
    """SQL: the event (a row of ``table``, when named) moved (was claimed, finished or
    re-armed) at or after the time bound to ``at``, a placeholder. Written without SQLite's
    scalar max(), which PostgreSQL lacks."""
    of = f"{table}." if table else ""
    return (
        f"({of}claimed_at >= {at} OR coalesce({of}finished_at, '') >= {at} "
        f"OR coalesce({of}rearmed_at, '') >= {at})"
    )


# Of an incident's events: how many there are, how many moved since :cutoff, how many are
# unconfirmed (planned). It may go when the first is not 0 and the others are.
INCIDENT_EVENTS = f"""
    SELECT count(*) AS n,
           sum(CASE WHEN {moved_since(":cutoff")} THEN 1 ELSE 0 END) AS recent,
           sum(CASE WHEN state = 'planned' THEN 1 ELSE 0 END) AS open
    FROM events WHERE incident_id = :incident
"""


@dataclass
class Pruned:
    """Rows removed by one prune."""

    runs: int = 0
    releases: int = 0
    outbox: int = 0
    events: int = 0
    notifications: int = 0
    incidents: int = 0  # whose events were all removed
    kept_incidents: int = 0  # asked about and kept: still open or still in a rule's query

    @property
    def total(self) -> int:
        return self.runs + self.releases + self.outbox + self.events + self.notifications


class RetentionStore(Table):
    """Old rows out of ``runs``, ``releases``, ``outbox``, ``events`` and ``notifications``."""

    def last_pruned(self) -> datetime | None:
        with self._db.guard("reading when the ledger was last pruned"):
            value = self._db.meta(PRUNED_AT)
        return None if value is None else from_text(value)

    def save_pruned(self, now: datetime) -> None:
        with self._db.guard("saving when the ledger was pruned"):
            self._db.set_meta(PRUNED_AT, to_text(now))

    def prune_history(self, cutoff: datetime, pruned: Pruned) -> None:
        """Runs, releases, re-armed events, finished outbox items, and finished notifications
        without an event (summaries, or their event is gone), from before ``cutoff``."""
        at = to_text(cutoff)
        with self._db.guard("pruning old runs, releases and outbox items"), self._db.transaction():
            runs = [
                row["id"]
                for row in self._db.rows(
                    """
                    SELECT id FROM runs INDEXED BY runs_started_at
                    WHERE started_at < :at AND status != 'running' AND id NOT IN (
                        SELECT max(runs.id) FROM runs JOIN run_rules ON run_rules.run_id = runs.id
                        WHERE runs.status = 'ok' AND runs.started_at < :at
                        GROUP BY run_rules.rule
                        UNION
                        SELECT max(id) FROM runs WHERE status = 'ok' AND started_at < :at
                        GROUP BY schedule
                    )
                    LIMIT :batch
                    """,
                    {"at": at, "batch": BATCH},
                )
            ]
            if runs:
                marks = ", ".join("?" for _ in runs)
                self._db.execute(f"DELETE FROM run_rules WHERE run_id IN ({marks})", runs)
                pruned.runs += self._db.execute(f"DELETE FROM runs WHERE id IN ({marks})", runs)
            pruned.releases += self._db.execute(
                "DELETE FROM releases WHERE event_key IN "
                "(SELECT event_key FROM releases WHERE released_at < ? LIMIT ?)",
                [at, BATCH],
            )
            # A re-armed event guards nothing: its key already counts as not done. Still
            # re-armed when deleted: a claim outside this transaction may take it over (see
            # postgres.py).
            pruned.events += self._db.execute(
                f"""
                DELETE FROM events WHERE state = 'rearmed' AND id IN (
                    SELECT id FROM events INDEXED BY events_rearmed
                    WHERE state = 'rearmed' AND claimed_at < :at AND NOT {moved_since(":at")}
                    LIMIT :batch
                )
                """,
                {"at": at, "batch": BATCH},
            )
            finished = ", ".join(f"'{state}'" for state in FINISHED_OUTBOX)
            pruned.outbox += self._db.execute(
                f"""
                DELETE FROM outbox WHERE id IN (
                    SELECT id FROM outbox
                    WHERE created_at < ? AND state IN ({finished}) AND id NOT IN (
                        SELECT max(id) FROM outbox GROUP BY digest
                    )
                    LIMIT ?
                )
                """,
                [at, BATCH],
            )
            pruned.notifications += self._db.execute(
                f"""
                DELETE FROM notifications WHERE id IN (
                    SELECT id FROM notifications INDEXED BY notifications_created_at
                    WHERE created_at < ? AND state IN ({_finished_notifications()})
                    AND NOT EXISTS (
                        SELECT 1 FROM events WHERE events.event_key = notifications.event_key
                    )
                    LIMIT ?
                )
                """,
                [at, BATCH],
            )

    def candidates(self, cutoff: datetime, *, checked_before: datetime, limit: int) -> list[str]:
        """Up to ``limit`` incidents whose every event is older than ``cutoff``, none
        unconfirmed, and that were not asked about since ``checked_before``.

        Walks the events claimed before the cutoff in claim order, at most SCAN_ROWS a
        call, from where the last call stopped (a cursor in ``meta``; back to the start
        at the end): each call costs the same however many old rows the incidents it
        must keep (still open, in a rule's query) leave in the ledger.
        """
        with self._db.guard("listing incidents whose events are old"):
            cursor = self._db.meta(CURSOR)
            at, row_id = ("", 0) if cursor is None else _cursor(cursor)
            rows = self._db.rows(
                """
                SELECT id, claimed_at, incident_id FROM events INDEXED BY events_claimed_at
                WHERE claimed_at < :cutoff AND (claimed_at, id) > (:at, :id)
                ORDER BY claimed_at, id LIMIT :scan
                """,
                {"cutoff": to_text(cutoff), "at": at, "id": row_id, "scan": SCAN_ROWS},
            )
            found: list[str] = []
            seen: set[str] = set()
            stop = None if len(rows) < SCAN_ROWS else rows[-1]
            for row in rows:
                incident_id = row["incident_id"]
                if incident_id in seen:
                    continue
                seen.add(incident_id)
                if self._forgettable(incident_id, cutoff, checked_before):
                    found.append(incident_id)
                    if len(found) == limit:
                        stop = row
                        break
            self._db.set_meta(CURSOR, "" if stop is None else f"{stop['claimed_at']}|{stop['id']}")
        return found

    def _forgettable(self, incident_id: str, cutoff: datetime, checked_before: datetime) -> bool:
        checked = self._db.one(
            "SELECT checked_at FROM retention_checks WHERE incident_id = ?", [incident_id]
        )
        if checked is not None and checked["checked_at"] >= to_text(checked_before):
            return False
        return _forgettable_events(
            self._db.one(INCIDENT_EVENTS, {"incident": incident_id, "cutoff": to_text(cutoff)})
        )

    def forget_incident(
        self, incident_id: str, cutoff: datetime, pruned: Pruned | None = None
    ) -> int:
        """Delete the incident's events if all are still older than ``cutoff`` and none is
        unconfirmed (checked again here, in the same transaction as the delete), and their
        finished notifications (one still to send goes by age once finished); returns how
        many events went, and counts the notifications in ``pruned``."""
        with (
            self._db.guard(f"pruning the events of incident {incident_id}"),
            self._db.transaction(),
        ):
            bounds = {"incident": incident_id, "cutoff": to_text(cutoff)}
            row = self._db.one(INCIDENT_EVENTS, bounds)
            self._db.execute("DELETE FROM retention_checks WHERE incident_id = ?", [incident_id])
            if not _forgettable_events(row):
                return 0
            notifications = self._db.execute(
                f"""
                DELETE FROM notifications
                WHERE state IN ({_finished_notifications()}) AND event_key IN (
                    SELECT event_key FROM events WHERE incident_id = ?
                )
                """,
                [incident_id],
            )
            if pruned is not None:
                pruned.notifications += notifications
            # The same conditions again, row by row: a claim outside this transaction may have
            # added an event since the read (see postgres.py); then none goes.
            return self._db.execute(
                f"""
                DELETE FROM events WHERE incident_id = :incident AND NOT EXISTS (
                    SELECT 1 FROM events AS other WHERE other.incident_id = :incident
                    AND (other.state = 'planned' OR {moved_since(":cutoff", "other")})
                )
                """,
                bounds,
            )

    def keep_incident(self, incident_id: str, now: datetime) -> None:
        """The API says the incident's events still guard something: ask again later."""
        with self._db.guard(f"recording that incident {incident_id} is kept"):
            self._db.execute(
                "INSERT INTO retention_checks (incident_id, checked_at) VALUES (?, ?) "
                "ON CONFLICT (incident_id) DO UPDATE SET checked_at = excluded.checked_at",
                [incident_id, to_text(now)],
            )


def _forgettable_events(row: dict[str, Any] | None) -> bool:
    """An incident's events (``INCIDENT_EVENTS``) may go: there are some, none moved since
    the cutoff, none is unconfirmed."""
    return row is not None and bool(row["n"]) and not row["recent"] and not row["open"]


def _finished_notifications() -> str:
    return ", ".join(f"'{state.value}'" for state in FINISHED_NOTIFICATIONS)


def _cursor(value: str) -> tuple[str, int]:
    at, _, row_id = value.partition("|")
    return (at, int(row_id)) if row_id.isdigit() else ("", 0)
