"""Catalog cache: the last good severities, statuses, ... so the daemon can start offline."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from automations.ledger.base import Table, current, from_text, to_text


class CatalogStore(Table):
    """The ``catalog`` table: one JSON list per kind, replaced whole."""

    def save(self, kind: str, items: list[dict[str, Any]], *, now: datetime | None = None) -> None:
        """Replace the cached ``kind`` (e.g. ``"severities"``) with freshly fetched items."""
        with self._db.guard(f"saving catalog {kind!r}"):
            self._db.execute(
                """
                INSERT INTO catalog (kind, items, fetched_at) VALUES (?, ?, ?)
                ON CONFLICT (kind) DO UPDATE
                SET items = excluded.items, fetched_at = excluded.fetched_at
                """,
                [kind, json.dumps(items, ensure_ascii=False), to_text(current(now))],
            )

    def load(self, kind: str) -> tuple[list[dict[str, Any]], datetime] | None:
        """The cached items and when they were fetched, or None if never saved."""
        with self._db.guard(f"loading catalog {kind!r}"):
            row = self._db.one("SELECT items, fetched_at FROM catalog WHERE kind = ?", [kind])
        if row is None:
            return None
        items: list[dict[str, Any]] = json.loads(row["items"])
        return items, from_text(row["fetched_at"])
