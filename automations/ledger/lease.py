"""Leased rows: one sender per queued row at a time, across threads and processes.

Both outboxes (``outbox`` for digests, ``notifications``) deliver the same way.
A sender claims a due row in one UPDATE (state *sending*, its owner from
``owners.lease_holder()``, ``lease_until``, the attempt counted), so of two
senders only one wins; only that owner may record the outcome, which ends the
lease. A row whose lease ran out (its sender crashed or hung) can be claimed
again; so can one whose holder is provably gone (``owners.holder_gone``) when
the caller names that holder as ``gone``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from automations.errors import LedgerError
from automations.ledger.base import Database, to_text

SENDING = "sending"


def claimable(waiting: str) -> str:
    """SQL for "a sender may claim this row at :now": ``waiting`` and due, or sending under a
    lease that ran out, or held by the dead sender ``:gone`` (NULL matches no one)."""
    return f"""(
        (state = '{waiting}' AND next_attempt_at <= :now)
        OR (state = '{SENDING}' AND (lease_until IS NULL OR lease_until <= :now
                                     OR owner = :gone)))"""


class Leases:
    """Claim a row of one table for one sender, and let only that sender finish it."""

    def __init__(self, db: Database, table: str, label: str) -> None:
        self._db = db
        self._table = table
        self._label = label  # a row as messages name it, e.g. "outbox item"

    def claim(
        self,
        row_id: int,
        *,
        waiting: str,
        owner: str,
        now: datetime,
        lease_until: datetime,
        gone: str | None = None,
        also: str = "",
        **params: Any,
    ) -> bool:
        """Make the row *sending* for ``owner``, counting the attempt; False if another sender
        has it, or it is not due. ``also`` adds SQL conditions (ending in AND)."""
        changed = self._db.execute(
            f"""
            UPDATE {self._table}
            SET state = '{SENDING}', owner = :owner, lease_until = :lease_until,
                attempts = attempts + 1
            WHERE id = :id AND {also} {claimable(waiting)}
            """,
            {
                **params,
                "id": row_id,
                "owner": owner,
                "now": to_text(now),
                "lease_until": to_text(lease_until),
                "gone": gone,
            },
        )
        return changed == 1

    def finish(
        self, row_id: int, owner: str, action: str, assignments: str, **params: Any
    ) -> dict[str, Any]:
        """End an attempt: only the owner of the sending row may, and it ends the lease.
        Returns the row as it was before."""
        with self._db.guard(f"{self._label} {row_id}: {action}"), self._db.transaction():
            row = self.held(row_id, owner, action)
            self.update(
                row_id, owner, action, f"{assignments}, owner = NULL, lease_until = NULL", **params
            )
        return row

    def update(self, row_id: int, owner: str, action: str, assignments: str, **params: Any) -> None:
        """UPDATE the row only while ``owner`` still holds its lease: read just before in the
        same transaction, but a writer outside it (another sender's claim) may have come
        between (see postgres.py); then LedgerError as from ``held``."""
        changed = self._db.execute(
            f"UPDATE {self._table} SET {assignments} "
            f"WHERE id = :id AND state = '{SENDING}' AND owner = :lease_owner",
            {**params, "id": row_id, "lease_owner": owner},
        )
        if changed != 1:
            self.held(row_id, owner, action)  # raises, saying who has it
            raise LedgerError(
                f"cannot {action}: {self._label} {row_id} changed in ledger {self._db.name}"
            )

    def held(self, row_id: int, owner: str, action: str) -> dict[str, Any]:
        """The row, if ``owner`` is sending it; else LedgerError saying who has it."""
        label, name = self._label, self._db.name
        row = self._db.one(f"SELECT * FROM {self._table} WHERE id = ?", [row_id])
        if row is None:
            raise LedgerError(f"cannot {action}: no {label} {row_id} in ledger {name}")
        if row["state"] != SENDING:
            raise LedgerError(
                f"cannot {action}: {label} {row_id} is already {row['state']} in ledger {name}"
            )
        if row["owner"] != owner:
            raise LedgerError(
                f"cannot {action}: {label} {row_id} is no longer ours: its lease ran out "
                f"and {row['owner']} is sending it (ledger {name})"
            )
        return row
