"""The kill switch's flag: one row in ``meta`` that every cycle reads (``automations pause``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from automations.ledger.base import Table, from_text, to_text

PAUSED = "paused"


@dataclass(frozen=True)
class Pause:
    """Who paused the automations, when (API time) and why."""

    since: datetime
    by: str
    reason: str

    def describe(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return f"paused since {to_text(self.since)[:19]}Z by {self.by}{why}"


class KillSwitch(Table):
    """Set, clear and read the pause; written by the CLI while a daemon runs on the file."""

    def pause(self, *, by: str, reason: str, now: datetime) -> Pause:
        """Pause (again: the reason and who are replaced, the time kept); returns the pause."""
        with self._db.guard("pausing the automations"), self._db.transaction():
            current = self._read_pause()
            pause = Pause(current.since if current else now, by, reason)
            value = json.dumps({"since": to_text(pause.since), "by": by, "reason": reason})
            self._db.set_meta(PAUSED, value)
        return pause

    def resume(self) -> Pause | None:
        """Clear the pause; returns the one cleared, None when there was none."""
        with self._db.guard("resuming the automations"), self._db.transaction():
            current = self._read_pause()
            self._db.execute("DELETE FROM meta WHERE key = ?", [PAUSED])
        return current

    def paused(self) -> Pause | None:
        with self._db.guard("reading whether the automations are paused"):
            return self._read_pause()

    def _read_pause(self) -> Pause | None:
        value = self._db.meta(PAUSED)
        if value is None:
            return None
        try:
            data = json.loads(value)
            return Pause(from_text(data["since"]), str(data["by"]), str(data["reason"]))
        except (ValueError, KeyError, TypeError):
            # Unreadable, but someone meant to pause: stay paused, and say so.
            return Pause(from_text("1970-01-01T00:00:00+00:00"), "unknown", "unreadable pause flag")
