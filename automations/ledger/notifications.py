"""Notifications: one row per (event, channel), queued with the action, delivered under a lease.

Rows are inserted only by ``ledger.events.mark_applied`` / ``mark_reconciled``, in
the transaction that records the action, so an action is never recorded
without its notifications nor the reverse. ``(event_key, channel)`` is unique:
recording the same notices twice queues nothing more. A sender claims a due
row like a digest (ledger/lease.py) and records what happened: *sent*, back to
*queued* with a later ``next_attempt_at``, *failed*, *expired*, or *held* (the
channel's ``max_per_hour`` was reached). Held rows of a channel are later
*summarised*: replaced by one summary row (key ``summary/<channel>/<first held
id>``) that says how many were held back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from automations.errors import HeldBatchChanged
from automations.ledger.base import Database, Table, current, from_text, maybe_time, to_text
from automations.ledger.lease import SENDING, Leases
from automations.ledger.owners import holder_gone
from automations.ledger.quarantine import Quarantine, salvaged_time
from automations.notify.notice import Notice
from automations.notify.spec import QueuedNotice

LABEL = "notification"
KEY_BATCH = 500  # event keys per lookup, well under SQLite's bound-parameter limit


class NotificationState(StrEnum):
    """Where a queued notification stands; SENT, FAILED, EXPIRED and SUMMARISED are final."""

    QUEUED = "queued"
    SENDING = SENDING
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"
    HELD = "held"  # max_per_hour was reached: never sent, counted in the next summary
    SUMMARISED = "summarised"  # a held row the channel's summary notice has counted
    # The row could not be decoded: copied to ``quarantine``; never sent, its key stays taken.
    QUARANTINED = "quarantined"


# States nothing will change any more: retention may forget rows in them.
FINISHED = (
    NotificationState.SENT,
    NotificationState.FAILED,
    NotificationState.EXPIRED,
    NotificationState.SUMMARISED,
    NotificationState.QUARANTINED,
)


@dataclass(frozen=True)
class Notification:
    """One row of ``notifications``."""

    id: int
    event_key: str
    channel: str
    notice: Notice | None  # None only when QUARANTINED
    state: NotificationState
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None
    owner: str | None = None  # the sender holding the lease, while sending
    lease_until: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Notification:
        """Decode the notice JSON, the state and the times."""
        return cls(
            id=row["id"],
            event_key=row["event_key"],
            channel=row["channel"],
            notice=Notice.from_json(row["notice"]),
            state=NotificationState(row["state"]),
            attempts=row["attempts"],
            next_attempt_at=from_text(row["next_attempt_at"]),
            created_at=from_text(row["created_at"]),
            sent_at=maybe_time(row["sent_at"]),
            last_error=row["last_error"],
            owner=row["owner"],
            lease_until=maybe_time(row["lease_until"]),
        )

    @classmethod
    def salvage(cls, row: Mapping[str, Any], error: str, at: datetime) -> Notification:
        """What can be read of a quarantined row, for ``history``."""

        return cls(
            id=int(row["id"]),
            event_key=str(row.get("event_key") or ""),
            channel=str(row.get("channel") or ""),
            notice=None,
            state=NotificationState.QUARANTINED,
            attempts=row["attempts"] if isinstance(row.get("attempts"), int) else 0,
            next_attempt_at=salvaged_time(row, "next_attempt_at", at),
            created_at=salvaged_time(row, "created_at", at),
            sent_at=None,
            last_error=error,
        )


@dataclass(frozen=True)
class HeldBatch:
    """A channel's held rows, waiting for their summary."""

    channel: str
    count: int
    first_id: int
    last_id: int
    since: datetime  # when the first of them was queued


class NotificationStore(Table):
    """The ``notifications`` table."""

    def __init__(self, db: Database, quarantine: Quarantine) -> None:
        super().__init__(db)
        self._quarantine = quarantine
        self._leases = Leases(db, "notifications", LABEL)

    def queue(self, event_key: str, notices: Sequence[QueuedNotice], now: datetime) -> None:
        """Insert one queued row per notice; an (event, channel) already there stays as it is.

        The caller holds ``guard`` and a transaction (the event's own UPDATE is in it).
        """
        moment = to_text(now)
        for queued in notices:
            self._db.execute(
                """
                INSERT INTO notifications (event_key, channel, notice, state, attempts,
                                           next_attempt_at, created_at)
                VALUES (?, ?, ?, ?, 0, ?, ?)
                ON CONFLICT (event_key, channel) DO NOTHING
                """,
                [
                    event_key,
                    queued.channel,
                    queued.notice.to_json(),
                    NotificationState.QUEUED.value,
                    moment,
                    moment,
                ],
            )

    def due(self, *, now: datetime) -> list[Notification]:
        """Rows a sender may claim now, oldest first: queued and due, or sending under a lease
        that ran out or by a sender that is provably gone (see ``owners.holder_gone``)."""
        with self._db.guard("listing due notifications"):
            rows = self._db.rows(
                """
                SELECT * FROM notifications
                WHERE (state = :queued AND next_attempt_at <= :now) OR state = :sending
                ORDER BY next_attempt_at, id
                """,
                {
                    "queued": NotificationState.QUEUED.value,
                    "sending": SENDING,
                    "now": to_text(now),
                },
            )
        return [
            item
            for item in self._decode_notifications(rows)
            if item.state is NotificationState.QUEUED
            or (item.state is NotificationState.SENDING and _reclaimable(item, now))
        ]

    def get(self, notification_id: int) -> Notification | None:
        """One row by id, whatever its state."""
        with self._db.guard(f"reading {LABEL} {notification_id}"):
            row = self._db.one("SELECT * FROM notifications WHERE id = ?", [notification_id])
        return None if row is None else self._decode_notifications([row])[0]

    def claim(
        self, item: Notification, *, owner: str, now: datetime, lease_until: datetime
    ) -> Notification | None:
        """Make ``item`` *sending* for ``owner`` until ``lease_until``, counting the attempt.

        One UPDATE, so of two senders only one wins; None for the other, or when the row is
        no longer due. A row whose sender is provably gone is taken over at once.
        """
        gone = item.owner if item.state is NotificationState.SENDING else None
        if gone is not None and not holder_gone(gone):
            gone = None  # only its lease running out frees it
        with self._db.guard(f"claiming {LABEL} {item.id}"):
            claimed = self._leases.claim(
                item.id,
                waiting=NotificationState.QUEUED.value,
                owner=owner,
                now=now,
                lease_until=lease_until,
                gone=gone,
            )
            if not claimed:
                return None
            fresh = self.get(item.id)
        return None if fresh is None or fresh.state is not NotificationState.SENDING else fresh

    def mark_sent(self, notification_id: int, *, owner: str, now: datetime) -> None:
        """The receiver accepted it: never sent again."""
        self._leases.finish(
            notification_id,
            owner,
            "mark it sent",
            "state = :state, sent_at = :at",
            state=NotificationState.SENT.value,
            at=to_text(now),
        )

    def mark_retry(
        self, notification_id: int, *, owner: str, error: str, next_attempt_at: datetime
    ) -> None:
        """A transient failure: queued again until ``next_attempt_at``."""
        self._leases.finish(
            notification_id,
            owner,
            "schedule a retry",
            "state = :state, last_error = :error, next_attempt_at = :at",
            state=NotificationState.QUEUED.value,
            error=error,
            at=to_text(next_attempt_at),
        )

    def mark(
        self, notification_id: int, state: NotificationState, *, owner: str, error: str
    ) -> None:
        """A final outcome without a send: FAILED, EXPIRED or HELD, with the reason."""
        if state not in (
            NotificationState.FAILED,
            NotificationState.EXPIRED,
            NotificationState.HELD,
        ):
            raise ValueError(f"a claimed notification cannot be marked {state}")
        self._leases.finish(
            notification_id,
            owner,
            f"mark it {state}",
            "state = :state, last_error = :error",
            state=state.value,
            error=error,
        )

    def sent_since(self, channel: str, since: datetime, *, up_to: int | None = None) -> int:
        """How many of ``channel``'s notifications were sent after ``since`` (max_per_hour);
        counting stops at ``up_to``, so the cost follows the limit, not the traffic."""
        limit = "" if up_to is None else f" LIMIT {int(up_to)}"
        with self._db.guard(f"counting the recent notifications of channel {channel!r}"):
            row = self._db.one(
                f"""
                SELECT count(*) AS n FROM (
                    SELECT 1 FROM notifications
                    WHERE channel = ? AND state = ? AND sent_at > ?{limit}
                ) AS recent
                """,
                [channel, NotificationState.SENT.value, to_text(since)],
            )
        return 0 if row is None else int(row["n"])

    def held(self) -> list[HeldBatch]:
        """Each channel's held rows, waiting for a summary, by channel name."""
        with self._db.guard("listing held notifications"):
            rows = self._db.rows(
                """
                SELECT channel, count(*) AS n, min(id) AS first_id, max(id) AS last_id,
                       min(created_at) AS since
                FROM notifications WHERE state = ? GROUP BY channel ORDER BY channel
                """,
                [NotificationState.HELD.value],
            )
        return [
            HeldBatch(row["channel"], row["n"], row["first_id"], row["last_id"], _since(row))
            for row in rows
        ]

    def summarise(self, batch: HeldBatch, summary: Notice, *, now: datetime) -> bool:
        """Queue ``summary`` for the batch's channel and mark the batch *summarised*, in one
        transaction; False (nothing changed) if the batch is no longer what was read."""
        with self._db.guard(f"summarising the held notifications of {batch.channel!r}"):
            try:
                with self._db.transaction():
                    marked = self._db.execute(
                        """
                        UPDATE notifications SET state = ?, last_error = ?
                        WHERE channel = ? AND state = ? AND id BETWEEN ? AND ?
                        """,
                        [
                            NotificationState.SUMMARISED.value,
                            f"held back by max_per_hour; counted in {summary.event_key}",
                            batch.channel,
                            NotificationState.HELD.value,
                            batch.first_id,
                            batch.last_id,
                        ],
                    )
                    if marked != batch.count:
                        raise HeldBatchChanged
                    self.queue(summary.event_key, [QueuedNotice(batch.channel, summary)], now)
            except HeldBatchChanged:
                return False
        return True

    def history(
        self,
        *,
        event_keys: Iterable[str] | None = None,
        channel: str | None = None,
        states: Iterable[NotificationState] | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Notification]:
        """History, newest first: of these events, of one channel, in these states, queued
        at or after ``since``."""
        where: list[str] = []
        params: dict[str, Any] = {}
        if since is not None:
            where.append("created_at >= :since")
            params["since"] = to_text(since)
        if channel is not None:
            where.append("channel = :channel")
            params["channel"] = channel
        if states is not None:
            names = {f"state{i}": NotificationState(s).value for i, s in enumerate(states)}
            where.append(f"state IN ({', '.join(':' + name for name in names) or 'NULL'})")
            params.update(names)
        order = " ORDER BY created_at DESC, id DESC"
        rows: list[dict[str, Any]] = []
        with self._db.guard("listing notifications"):
            if event_keys is None:
                sql = "SELECT * FROM notifications" + _where(where) + order
                if limit is not None:
                    sql += " LIMIT :limit"
                    params["limit"] = limit
                rows = self._db.rows(sql, params)
            else:
                wanted = list(dict.fromkeys(event_keys))
                for start in range(0, len(wanted), KEY_BATCH):
                    batch = {
                        f"key{i}": key for i, key in enumerate(wanted[start : start + KEY_BATCH])
                    }
                    keys = f"event_key IN ({', '.join(':' + name for name in batch)})"
                    rows += self._db.rows(
                        "SELECT * FROM notifications" + _where([keys, *where]),
                        {**params, **batch},
                    )
                rows.sort(key=lambda row: (row["created_at"], row["id"]), reverse=True)
                rows = rows if limit is None else rows[:limit]
        return self._decode_notifications(rows)

    def _decode_notifications(self, rows: Iterable[Mapping[str, Any]]) -> list[Notification]:
        """Each row as a Notification; one that does not decode is quarantined in place (its
        (event, channel) stays taken, so it is never queued again) and salvaged."""
        return self._quarantine.decode(rows, Notification.from_row, self._set_aside)

    def _set_aside(self, row: Mapping[str, Any], exc: BaseException) -> Notification:
        error = self._quarantine.in_place(
            "notifications",
            row,
            exc,
            error_column="last_error",
            also=", owner = NULL, lease_until = NULL",
        )
        return Notification.salvage(row, error, current(None))


def _reclaimable(item: Notification, now: datetime) -> bool:
    """A sending row another sender may take: its lease ran out, or its sender is gone."""
    lapsed = item.lease_until is None or item.lease_until <= now
    return lapsed or holder_gone(item.owner)


def _since(row: Mapping[str, Any]) -> datetime:
    """The batch's first queue time; an unreadable one (its row is quarantined when read)
    must not stop the summary."""
    try:
        return from_text(str(row["since"]))
    except ValueError:
        return current(None)


def _where(conditions: list[str]) -> str:
    return " WHERE " + " AND ".join(conditions) if conditions else ""
