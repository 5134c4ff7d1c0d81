"""Is the ledger file still the one the daemon opened?

SQLite goes on writing to an open file after it is deleted, or after another
file is renamed over its path: the daemon's claims would land in a file
nobody will open again, and the next start would find a ledger that forgets
every action done, and do them again. A running daemon compares the path's
device and inode with those it opened, before each job, and stops if they
differ.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from automations.errors import LedgerReplaced


class FileIdentity(NamedTuple):
    device: int
    inode: int


def identity(path: Path) -> FileIdentity | None:
    """The file at ``path`` now; None if there is none."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return FileIdentity(found.st_dev, found.st_ino)


class LedgerFile:
    """Remembers which file ``path`` named when the ledger was opened."""

    def __init__(self, path: Path | None) -> None:
        """``path`` None: a ledger with no file (in memory, or PostgreSQL), nothing to watch."""
        self.path = path or Path()
        self.opened = None if path is None else identity(path)

    def check(self) -> None:
        """Raise LedgerReplaced if the path is gone or now names another file."""
        if self.opened is None:  # no file: nothing on disk to lose
            return
        now = identity(self.path)
        if now == self.opened:
            return
        what = "it is gone" if now is None else "the path now names another file"
        raise LedgerReplaced(
            f"ledger file {self.path} was deleted or replaced ({what}); stopping: a new file "
            "would forget every action done. Put the original file back (or restore a "
            "backup of it), then start the daemon again"
        )
