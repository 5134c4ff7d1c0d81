"""Small facts that outlive a process: today, the API clock's offset from the host's."""

from __future__ import annotations

import secrets
from datetime import timedelta

from automations.errors import LedgerError
from automations.ledger.base import Table

CLOCK_OFFSET = "clock_offset_seconds"
LINK_KEY = "link_key"


class MetaStore(Table):
    """The ``meta`` table: one text value per key."""

    def clock_offset(self) -> timedelta | None:
        """API time minus host time, as the last process that talked to the API saw it."""
        with self._db.guard(f"reading {CLOCK_OFFSET}"):
            text = self._db.meta(CLOCK_OFFSET)
        try:
            return None if text is None else timedelta(seconds=float(text))
        except (ValueError, OverflowError):
            return None  # unreadable: as if never learned; the next API answer replaces it

    def save_clock_offset(self, offset: timedelta) -> None:
        with self._db.guard(f"saving {CLOCK_OFFSET}"):
            self._db.set_meta(CLOCK_OFFSET, repr(offset.total_seconds()))

    def link_key(self) -> str:
        """The key that signs links the daemon serves (a digest's page of changes), made once
        per ledger: every replica, and every later process, signs and checks with the same."""
        with self._db.guard(f"making {LINK_KEY}"):
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                [LINK_KEY, secrets.token_hex(32)],
            )
            key = self._db.meta(LINK_KEY)
        if not key:  # someone blanked it: refuse rather than sign with an empty key
            raise LedgerError(f"{LINK_KEY} in ledger {self._db.name} is empty; delete the row")
        return key
