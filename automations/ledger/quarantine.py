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
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from automations.ledger.base import LedgerBase, current, from_text, to_text

log = logging.getLogger(__name__)

# What a reader catches from a row's decoder: a bad enum, JSON or time is a ValueError
# (json.JSONDecodeError included), a wrong type a TypeError, a missing column a KeyError.
UNDECODABLE = (ValueError, TypeError, KeyError)


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


def describe(exc: BaseException) -> str:
    """The decoder's error in one line, with its type (a KeyError alone is just a name)."""
    return f"{type(exc).__name__}: {exc}"


class QuarantineStore(LedgerBase):
    """The ``quarantine`` table."""

    def _quarantine(
        self,
        source: str,
        row: Mapping[str, Any],
        error: BaseException,
        *,
        event_key: str | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Copy ``row`` aside and log it, once per row; True when this call did.

        The caller holds ``_guard`` and changes the original row in the same breath.
        """
        changed = self._execute(
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
                describe(error),
                to_text(current(now)),
            ],
        )
        if changed != 1:
            return False
        log.error(
            "ledger %s: %s row %s%s cannot be read (%s); quarantined: copied to the quarantine "
            "table and skipped from now on%s",
            self.name,
            source,
            row["id"],
            f" (event {event_key})" if event_key else "",
            describe(error),
            "; its key stays taken, so the action is not repeated" if event_key else "",
        )
        return True

    def quarantined(self, source: str | None = None) -> list[Quarantined]:
        """Every quarantined row (of one table), oldest first."""
        where = "" if source is None else " WHERE source = :source"
        with self._guard("listing quarantined rows"):
            rows = self._rows(f"SELECT * FROM quarantine{where} ORDER BY id", {"source": source})
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
