"""Small facts that outlive a process: today, the API clock's offset from the host's."""

from __future__ import annotations

from datetime import timedelta

from automations.ledger.base import LedgerBase

CLOCK_OFFSET = "clock_offset_seconds"


class MetaStore(LedgerBase):
    """The ``meta`` table: one text value per key."""

    def _meta(self, key: str) -> str | None:
        with self._guard(f"reading {key}"):
            row = self._one("SELECT value FROM meta WHERE key = ?", [key])
        return None if row is None else str(row["value"])

    def _set_meta(self, key: str, value: str) -> None:
        with self._guard(f"saving {key}"):
            self._execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )

    def clock_offset(self) -> timedelta | None:
        """API time minus host time, as the last process that talked to the API saw it."""
        text = self._meta(CLOCK_OFFSET)
        return None if text is None else timedelta(seconds=float(text))

    def save_clock_offset(self, offset: timedelta) -> None:
        self._set_meta(CLOCK_OFFSET, repr(offset.total_seconds()))
