"""Verified incident.io deliveries, queued for the webhook worker (``webhook_deliveries``).

A delivery is recorded before it is answered, so once incident.io hears 2xx the
event cannot be lost: a crash between recording and processing leaves the row
*queued*, and the worker processes it at the next start. ``webhook_id`` is
unique: a retry or a replay of a delivery already recorded inserts nothing and is
not processed again. Processing that could not finish (the API unreachable) is
retried with backoff; after that the row is *processed* or *failed*. Finished
rows are forgotten after a while (``forget_webhook_deliveries``): incident.io
retries a delivery for about a day, so a week of memory de-duplicates them all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from automations.ledger.base import Table, from_text, maybe_time, to_text


class WebhookDeliveryState(StrEnum):
    QUEUED = "queued"
    PROCESSED = "processed"
    FAILED = "failed"


@dataclass(frozen=True)
class WebhookDelivery:
    """One row of ``webhook_deliveries``."""

    id: int
    webhook_id: str
    event_type: str
    incident_id: str | None  # None until known: a private follow-up event names the follow-up
    follow_up_id: str | None
    state: WebhookDeliveryState
    attempts: int
    received_at: datetime
    next_attempt_at: datetime
    finished_at: datetime | None
    last_error: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> WebhookDelivery:
        return cls(
            id=row["id"],
            webhook_id=row["webhook_id"],
            event_type=row["event_type"],
            incident_id=row["incident_id"],
            follow_up_id=row["follow_up_id"],
            state=WebhookDeliveryState(row["state"]),
            attempts=row["attempts"],
            received_at=from_text(row["received_at"]),
            next_attempt_at=from_text(row["next_attempt_at"]),
            finished_at=maybe_time(row["finished_at"]),
            last_error=row["last_error"],
        )


class WebhookDeliveryStore(Table):
    """Record, queue and finish webhook deliveries."""

    def record(
        self,
        *,
        webhook_id: str,
        event_type: str,
        incident_id: str | None,
        follow_up_id: str | None,
        now: datetime,
    ) -> bool:
        """Queue a verified delivery; False when its ``webhook_id`` is already recorded."""
        moment = to_text(now)
        with self._db.guard("recording a webhook delivery"):
            changed = self._db.execute(
                """
                INSERT INTO webhook_deliveries (webhook_id, event_type, incident_id,
                    follow_up_id, state, attempts, received_at, next_attempt_at)
                VALUES (?, ?, ?, ?, ?, 0, ?, ?)
                ON CONFLICT (webhook_id) DO NOTHING
                """,
                [
                    webhook_id,
                    event_type,
                    incident_id,
                    follow_up_id,
                    WebhookDeliveryState.QUEUED.value,
                    moment,
                    moment,
                ],
            )
        return changed == 1

    def due(self, *, now: datetime, limit: int) -> list[WebhookDelivery]:
        """Queued deliveries due at ``now``, in the order they arrived (at most ``limit``).

        One never attempted is due whatever ``now`` says: a restarted process's clock may
        be a second behind the one that recorded it.
        """
        with self._db.guard("listing queued webhook deliveries"):
            rows = self._db.rows(
                """
                SELECT * FROM webhook_deliveries
                WHERE state = ? AND (attempts = 0 OR next_attempt_at <= ?)
                ORDER BY id LIMIT ?
                """,
                [WebhookDeliveryState.QUEUED.value, to_text(now), limit],
            )
        return [WebhookDelivery.from_row(row) for row in rows]

    def backlog(self) -> int:
        """How many deliveries wait to be processed (due or not)."""
        with self._db.guard("counting queued webhook deliveries"):
            row = self._db.one(
                "SELECT count(*) AS n FROM webhook_deliveries WHERE state = ?",
                [WebhookDeliveryState.QUEUED.value],
            )
        return int(row["n"]) if row else 0

    def history(self, *, limit: int = 1000) -> list[WebhookDelivery]:
        """The most recent deliveries, oldest first (for people and tests)."""
        with self._db.guard("listing webhook deliveries"):
            rows = self._db.rows(
                "SELECT * FROM (SELECT * FROM webhook_deliveries ORDER BY id DESC LIMIT ?) "
                "ORDER BY id",
                [limit],
            )
        return [WebhookDelivery.from_row(row) for row in rows]

    def get(self, webhook_id: str) -> WebhookDelivery | None:
        with self._db.guard("reading a webhook delivery"):
            row = self._db.one(
                "SELECT * FROM webhook_deliveries WHERE webhook_id = ?", [webhook_id]
            )
        return None if row is None else WebhookDelivery.from_row(row)

    def resolve_incident(self, ids: Sequence[int], incident_id: str) -> None:
        """The incident a follow-up belongs to, learned from the API: not asked again."""
        self._update_deliveries(
            ids, "resolving a webhook delivery", "incident_id = ?", [incident_id]
        )

    def finish(
        self,
        ids: Sequence[int],
        *,
        state: WebhookDeliveryState,
        now: datetime,
        error: str | None = None,
    ) -> None:
        """Processed (whatever the rules decided) or failed for good (``error`` says why)."""
        self._update_deliveries(
            ids,
            "finishing webhook deliveries",
            "state = ?, finished_at = ?, last_error = ?",
            [state.value, to_text(now), error],
        )

    def retry(self, ids: Sequence[int], *, next_attempt_at: datetime, error: str) -> None:
        """Processing could not finish: count the attempt and try again at ``next_attempt_at``."""
        self._update_deliveries(
            ids,
            "postponing webhook deliveries",
            "attempts = attempts + 1, next_attempt_at = ?, last_error = ?",
            [to_text(next_attempt_at), error],
        )

    def forget(self, *, before: datetime) -> int:
        """Delete finished deliveries received before ``before``; how many went."""
        with self._db.guard("forgetting old webhook deliveries"):
            changed = self._db.execute(
                "DELETE FROM webhook_deliveries WHERE state != ? AND received_at < ?",
                [WebhookDeliveryState.QUEUED.value, to_text(before)],
            )
        return changed

    def _update_deliveries(
        self, ids: Sequence[int], doing: str, assignments: str, params: list[Any]
    ) -> None:
        if not ids:
            return
        marks = ", ".join("?" for _ in ids)
        with self._db.guard(doing), self._db.transaction():
            self._db.execute(
                f"UPDATE webhook_deliveries SET {assignments} WHERE id IN ({marks})",
                [*params, *ids],
            )
