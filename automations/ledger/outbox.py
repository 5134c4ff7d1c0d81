"""Outbox: rendered digests wait here until SMTP accepts them, so a crash or outage loses none.

``(digest, period)`` is unique, so each period's digest is enqueued once. The
message is stored as the exact bytes to send (with its Message-ID), so a retry
after a crash is the same message and receivers can de-duplicate it.

One sender at a time: ``outbox_claim`` makes a row *sending* with an owner and
a lease in one UPDATE, and only that owner may record what happened. A row
whose lease ran out (its sender crashed) can be claimed again. Recipients the
server accepted, or refused for good, are recorded as each SMTP transaction
ends, so a retry goes only to the rest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from automations.ledger.base import Database, Table, current, from_text, maybe_time, to_text
from automations.ledger.lease import Leases, claimable
from automations.ledger.quarantine import Quarantine, salvaged_time

# Claimable at :now: pending and due, or sending under a lease that ran out (a crashed
# sender); never past expires_at.
_CLAIMABLE = f"expires_at > :now AND {claimable('pending')}"


class OutboxState(StrEnum):
    """Where a queued digest stands; SENT, FAILED and EXPIRED are final."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"
    # The row could not be decoded: copied to ``quarantine``; never sent, never queued again.
    QUARANTINED = "quarantined"


@dataclass(frozen=True)
class OutboxItem:
    """One row of ``outbox``."""

    id: int
    digest: str
    period: str
    state: OutboxState
    subject: str
    recipients: list[str]
    message: bytes
    message_id: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    expires_at: datetime
    accepted: list[str] = field(default_factory=list)  # by the server: never sent again
    refused: dict[str, str] = field(default_factory=dict)  # for good (5xx): address -> reply
    owner: str | None = None  # the sender holding the lease, while sending
    lease_until: datetime | None = None

    @property
    def remaining(self) -> list[str]:
        """Recipients still to send to: neither accepted nor refused for good."""
        done = {*self.accepted, *self.refused}
        return [address for address in self.recipients if address not in done]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> OutboxItem:
        """Decode the JSON, bytes and time columns."""
        return cls(
            id=row["id"],
            digest=row["digest"],
            period=row["period"],
            state=OutboxState(row["state"]),
            subject=row["subject"],
            recipients=json.loads(row["recipients"]),
            message=bytes(row["message"]),
            message_id=row["message_id"],
            attempts=row["attempts"],
            next_attempt_at=from_text(row["next_attempt_at"]),
            last_error=row["last_error"],
            created_at=from_text(row["created_at"]),
            sent_at=maybe_time(row["sent_at"]),
            expires_at=from_text(row["expires_at"]),
            accepted=json.loads(row["accepted"] or "[]"),
            refused=json.loads(row["refused"] or "{}"),
            owner=row["owner"],
            lease_until=maybe_time(row["lease_until"]),
        )

    @classmethod
    def salvage(cls, row: Mapping[str, Any], error: str, at: datetime) -> OutboxItem:
        """A quarantined row as an item that is never sent: its period stays taken."""

        return cls(
            id=int(row["id"]),
            digest=str(row["digest"]),
            period=str(row["period"]),
            state=OutboxState.QUARANTINED,
            subject=str(row.get("subject") or ""),
            recipients=[],
            message=b"",
            message_id=str(row.get("message_id") or ""),
            attempts=row["attempts"] if isinstance(row.get("attempts"), int) else 0,
            next_attempt_at=salvaged_time(row, "next_attempt_at", at),
            last_error=error,
            created_at=salvaged_time(row, "created_at", at),
            sent_at=None,
            expires_at=salvaged_time(row, "expires_at", at),
        )


class OutboxStore(Table):
    """The ``outbox`` table."""

    def __init__(self, db: Database, quarantine: Quarantine) -> None:
        super().__init__(db)
        self._quarantine = quarantine
        self._leases = Leases(db, "outbox", "outbox item")

    def enqueue(
        self,
        *,
        digest: str,
        period: str,
        subject: str,
        recipients: list[str],
        message: bytes,
        message_id: str,
        expires_at: datetime,
        now: datetime | None = None,
    ) -> bool:
        """Queue a rendered digest, due at once; False if this (digest, period) already exists."""
        moment = to_text(current(now))
        with self._db.guard(f"queueing digest {digest!r} for {period!r}"):
            changed = self._db.execute(
                """
                INSERT INTO outbox (digest, period, state, subject, recipients, message,
                                    message_id, attempts, next_attempt_at, created_at, expires_at)
                VALUES (?, ?, 'pending', ?, ?, ?, ?, 0, ?, ?, ?)
                ON CONFLICT (digest, period) DO NOTHING
                """,
                [
                    digest,
                    period,
                    subject,
                    json.dumps(recipients, ensure_ascii=False),
                    bytes(message),
                    message_id,
                    moment,
                    moment,
                    to_text(expires_at),
                ],
            )
            return changed == 1

    def due(self, *, now: datetime) -> list[OutboxItem]:
        """Items a sender may claim now (see ``claim``), oldest first."""
        with self._db.guard("listing due outbox items"):
            rows = self._db.rows(
                f"SELECT * FROM outbox WHERE {_CLAIMABLE} ORDER BY next_attempt_at, id",
                {"now": to_text(now), "gone": None},
            )
        return [i for i in self._decode_outbox(rows) if i.state is not OutboxState.QUARANTINED]

    def get(self, item_id: int) -> OutboxItem | None:
        """One item by id, whatever its state."""
        with self._db.guard(f"reading outbox item {item_id}"):
            row = self._db.one("SELECT * FROM outbox WHERE id = ?", [item_id])
        return None if row is None else self._decode_outbox([row])[0]

    def claim(
        self, item_id: int, *, owner: str, now: datetime, lease_until: datetime
    ) -> OutboxItem | None:
        """Make the item *sending* for ``owner`` until ``lease_until``, counting the attempt.

        One UPDATE, so of two senders (threads or processes) only one wins; None for
        the other, or when the item is not due, already final, or leased by a live sender.
        """
        with self._db.guard(f"claiming outbox item {item_id}"):
            claimed = self._leases.claim(
                item_id,
                waiting=OutboxState.PENDING.value,
                owner=owner,
                now=now,
                lease_until=lease_until,
                also="expires_at > :now AND",
            )
            if not claimed:
                return None
            item = self.get(item_id)
        return None if item is None or item.state is OutboxState.QUARANTINED else item

    def record_recipients(
        self, item_id: int, *, owner: str, accepted: list[str], refused: Mapping[str, str]
    ) -> None:
        """One SMTP transaction ended: these recipients are done (accepted, or refused for good)."""
        action = "record its recipients"
        with self._db.guard(f"outbox item {item_id}: {action}"), self._db.transaction():
            row = self._leases.held(item_id, owner, action)
            done = json.loads(row["accepted"] or "[]")
            done += [address for address in accepted if address not in done]
            refusals = {**json.loads(row["refused"] or "{}"), **refused}
            self._leases.update(
                item_id,
                owner,
                action,
                "accepted = :accepted, refused = :refused",
                accepted=json.dumps(done, ensure_ascii=False),
                refused=json.dumps(refusals, ensure_ascii=False),
            )

    def mark_sent(
        self, item_id: int, *, owner: str, now: datetime | None = None, note: str | None = None
    ) -> None:
        """Every recipient accepted it (or refused it for good, ``note``): never sent again."""
        self._leases.finish(
            item_id,
            owner,
            "mark it sent",
            "state = 'sent', sent_at = :at, last_error = coalesce(:note, last_error)",
            at=to_text(current(now)),
            note=note,
        )

    def mark_retry(
        self, item_id: int, *, owner: str, error: str, next_attempt_at: datetime
    ) -> None:
        """A transient SMTP failure: back to pending until ``next_attempt_at``."""
        self._leases.finish(
            item_id,
            owner,
            "schedule a retry",
            "state = 'pending', last_error = :error, next_attempt_at = :at",
            error=error,
            at=to_text(next_attempt_at),
        )

    def mark_failed(self, item_id: int, *, owner: str, error: str) -> None:
        """A permanent SMTP failure (e.g. every recipient rejected): stop trying."""
        self._leases.finish(
            item_id, owner, "mark it failed", "state = 'failed', last_error = :error", error=error
        )

    def expire(self, *, now: datetime) -> list[OutboxItem]:
        """Give up on unsent items past ``expires_at`` (a stale digest is noise); return them.

        An item a live sender holds is left to it: its attempt ends within the lease.
        """
        moment = to_text(now)
        with self._db.guard("expiring outbox items"), self._db.transaction():
            ids = [
                row["id"]
                for row in self._db.rows(
                    """
                    SELECT id FROM outbox WHERE expires_at <= :now AND (state = 'pending'
                        OR (state = 'sending' AND (lease_until IS NULL OR lease_until <= :now)))
                    """,
                    {"now": moment},
                )
            ]
            if not ids:
                return []
            marks = ", ".join("?" for _ in ids)
            # The same conditions again: a sender outside this transaction may have claimed
            # one since the read (see postgres.py).
            expired = self._db.rows(
                f"""
                UPDATE outbox SET state = 'expired', owner = NULL, lease_until = NULL
                WHERE id IN ({marks}) AND expires_at <= ? AND (state = 'pending'
                    OR (state = 'sending' AND (lease_until IS NULL OR lease_until <= ?)))
                RETURNING id
                """,
                [*ids, moment, moment],
            )
            if not expired:
                return []
            ids = [row["id"] for row in expired]
            marks = ", ".join("?" for _ in ids)
            rows = self._db.rows(f"SELECT * FROM outbox WHERE id IN ({marks}) ORDER BY id", ids)
        return [i for i in self._decode_outbox(rows) if i.state is not OutboxState.QUARANTINED]

    def _outbox_state(self, row: Mapping[str, Any]) -> OutboxState:
        """The state column alone (no message bytes read); an unknown one quarantines the row."""
        if row["state"] in {state.value for state in OutboxState}:
            return OutboxState(row["state"])
        with self._db.guard(f"reading outbox item {row['id']}"):
            full = self._db.one("SELECT * FROM outbox WHERE id = ?", [row["id"]])
        return OutboxState.QUARANTINED if full is None else self._decode_outbox([full])[0].state

    def _decode_outbox(self, rows: list[dict[str, Any]]) -> list[OutboxItem]:
        """Each row as an item; one that does not decode is quarantined in place (its digest
        and period stay taken, so it is never queued again) and salvaged."""
        return self._quarantine.decode(rows, OutboxItem.from_row, self._set_aside)

    def _set_aside(self, row: Mapping[str, Any], exc: BaseException) -> OutboxItem:
        error = self._quarantine.in_place("outbox", row, exc, error_column="last_error")
        return OutboxItem.salvage(row, error, current(None))

    def last_period(self, digest: str) -> str | None:
        """The latest period ever enqueued for ``digest``, to know which periods were missed."""
        with self._db.guard(f"reading the last period of digest {digest!r}"):
            rows = self._db.rows("SELECT period FROM outbox WHERE digest = ?", [digest])
        periods: list[str] = [row["period"] for row in rows]
        return max(periods, key=_period_order, default=None)

    def find(self, digest: str, period: str) -> OutboxItem | None:
        """The item for this (digest, period), whatever its state: rendered once means done."""
        with self._db.guard(f"reading digest {digest!r} for {period!r}"):
            row = self._db.one(
                "SELECT * FROM outbox WHERE digest = ? AND period = ?", [digest, period]
            )
        return None if row is None else self._decode_outbox([row])[0]

    def periods(self, digest: str) -> list[tuple[str, OutboxState]]:
        """Every period enqueued for ``digest`` with its state, oldest first (no message bytes)."""
        with self._db.guard(f"listing periods of digest {digest!r}"):
            rows = self._db.rows("SELECT id, period, state FROM outbox WHERE digest = ?", [digest])
        pairs = [(row["period"], self._outbox_state(row)) for row in rows]
        return sorted(pairs, key=lambda pair: _period_order(pair[0]))

    def first_scheduled(self, digest: str, *, now: datetime) -> datetime:
        """When this ledger first scheduled ``digest``; ``now`` is recorded on the first ask.

        Occurrences before it were never missed, so they are not caught up: a new
        ledger does not open with a "missed" digest. A digest already in the outbox
        (queued before this was recorded) dates from its first item.
        """
        key = f"digest_first_scheduled:{digest}"
        with self._db.guard(f"reading when digest {digest!r} was first scheduled"):
            self._db.execute(
                """
                INSERT INTO meta (key, value)
                VALUES (?, coalesce((SELECT min(created_at) FROM outbox WHERE digest = ?), ?))
                ON CONFLICT (key) DO NOTHING
                """,
                [key, digest, to_text(now)],
            )
            value = self._db.meta(key)
        assert value is not None  # inserted just above, or before
        return from_text(value)


def _period_order(period: str) -> tuple[int, datetime | str]:
    """Order ISO periods by instant, since offsets differ across DST; other keys by text."""
    try:
        moment = datetime.fromisoformat(period)
    except ValueError:
        return (0, period)
    if moment.tzinfo is None:
        return (0, period)
    return (1, moment)
