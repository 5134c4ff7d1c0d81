"""Rows that cannot be decoded: copied aside once, reported once, never allowed to halt a cycle.

A ledger row can become undecodable (a hand edit, a bad restore, a bug in an
older version): a state no version knows, JSON cut short, a time without a
timezone. Raising on it would stop every cycle and crash-loop a restart, so
each table's reader hands such a row here instead: the row is copied, as it
was, to ``quarantine`` (once, keyed by table and id), logged once, and the
reader carries on. What happens to the original row is the table's choice:
an event stays in ``events`` as ``quarantined`` so its key stays taken and the
action is never sent twice; a digest stays in ``outbox`` for the same reason;
a run (history only) is moved out of ``runs``.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from automations.failures import described
from automations.ledger.base import Table, current, from_text, to_text

log = logging.getLogger(__name__)

# What a reader catches from a row's decoder: a bad enum, JSON or time is a ValueError
# (json.JSONDecodeError included), a wrong type a TypeError, a missing column a KeyError.
UNDECODABLE = (ValueError, TypeError, KeyError)

# The state every table marks a row quarantined in place with.
QUARANTINED = "quarantined"

Decoded = TypeVar("Decoded")
Row = Mapping[str, Any]


@dataclass(frozen=True)
class Quarantined:
    """One row of ``quarantine``."""

    source: str
    source_id: int
    event_key: str | None
    row: str
    error: str
    quarantined_at: str

    def line(self) -> str:
        key = f" (event {self.event_key})" if self.event_key else ""
        return (
            f"quarantined {self.quarantined_at}: {self.source} row {self.source_id}{key} "
            f"could not be read: {self.error}"
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    return str(value)


class Quarantine(Table):
    """The ``quarantine`` table, and the one way every table reads rows past a bad one."""

    def decode(
        self,
        rows: Iterable[Row],
        from_row: Callable[[Row], Decoded],
        set_aside: Callable[[Row, BaseException], Decoded | None],
    ) -> list[Decoded]:
        """Each row through ``from_row``; one that does not decode goes to the table's
        ``set_aside``, which quarantines it and returns what stands in for it (or None)."""
        decoded: list[Decoded] = []
        for row in rows:
            try:
                decoded.append(from_row(row))
            except UNDECODABLE as exc:
                salvaged = set_aside(row, exc)
                if salvaged is not None:
                    decoded.append(salvaged)
        return decoded

    def in_place(
        self,
        table: str,
        row: Row,
        exc: BaseException,
        *,
        error_column: str,
        also: str = "",
        event_key: str | None = None,
    ) -> str:
        """Copy the row aside (once) and mark it quarantined where it is, so its key stays
        taken; returns the error the row keeps (the first one, if quarantined before).
        ``also`` adds assignments (starting with a comma)."""
        error = f"quarantined, the ledger row could not be read: {described(exc)}"
        with self._db.guard(f"quarantining {table} row {row.get('id')}"), self._db.transaction():
            self.move(table, row, exc, event_key=event_key)
            self._db.execute(
                f"UPDATE {table} SET state = ?, {error_column} = ?{also} "
                "WHERE id = ? AND state != ?",
                [QUARANTINED, error, row["id"], QUARANTINED],
            )
            stored = self._db.one(
                f"SELECT {error_column} AS error FROM {table} WHERE id = ?", [row["id"]]
            )
        if stored is not None and isinstance(stored["error"], str):
            error = stored["error"]
        return error

    def move(
        self,
        source: str,
        row: Mapping[str, Any],
        error: BaseException,
        *,
        event_key: str | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Copy ``row`` aside and log it, once per row; True when this call did.

        The caller holds ``guard`` and changes the original row in the same breath.
        """
        changed = self._db.execute(
            """
            INSERT INTO quarantine (source, source_id, event_key, row, error, quarantined_at)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (source, source_id) DO NOTHING
            """,
            [
                source,
                int(row["id"]),
                event_key,
                json.dumps(dict(row), default=_jsonable, ensure_ascii=False),
                described(error),
                to_text(current(now)),
            ],
        )
        if changed != 1:
            return False
        log.error(
            "ledger %s: %s row %s%s cannot be read (%s); quarantined: copied to the quarantine "
            "table and skipped from now on%s",
            self._db.name,
            source,
            row["id"],
            f" (event {event_key})" if event_key else "",
            described(error),
            "; its key stays taken, so the action is not repeated" if event_key else "",
        )
        return True

    def rows(self, source: str | None = None) -> list[Quarantined]:
        """Every quarantined row (of one table), oldest first."""
        where = "" if source is None else " WHERE source = :source"
        with self._db.guard("listing quarantined rows"):
            rows = self._db.rows(f"SELECT * FROM quarantine{where} ORDER BY id", {"source": source})
        return [
            Quarantined(
                source=row["source"],
                source_id=row["source_id"],
                event_key=row["event_key"],
                row=row["row"],
                error=row["error"],
                quarantined_at=row["quarantined_at"],
            )
            for row in rows
        ]


def salvaged_time(row: Mapping[str, Any], key: str, fallback: datetime) -> datetime:
    """A quarantined row's time column, or ``fallback`` when it cannot be read."""
    try:
        return from_text(row[key])
    except UNDECODABLE:
        return fallback
