"""Small facts that outlive a process: today, the API clock's offset from the host's."""

from __future__ import annotations

from datetime import timedelta

from automations.ledger.base import LedgerBase

CLOCK_OFFSET = "clock_offset_seconds"


class MetaStore(LedgerBase):
    """The ``meta`` table: one text value per key."""

    def clock_offset(self) -> timedelta | None:
        """API time minus host time, as the last process that talked to the API saw it."""
        text = self._meta(CLOCK_OFFSET)
        try:
            return None if text is None else timedelta(seconds=float(text))
        except (ValueError, OverflowError):
            return None  # unreadable: as if never learned; the next API answer replaces it

    def save_clock_offset(self, offset: timedelta) -> None:
        self._set_meta(CLOCK_OFFSET, repr(offset.total_seconds()))
