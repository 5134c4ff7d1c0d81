"""The one-daemon lock: an exclusive ``flock`` on the database file itself.

``flock`` on a descriptor locks the file's inode, not its name, so a symlink,
a hard link or a bind mount of the same ledger meets the same lock (a lock
file beside the database would follow the name). SQLite's own locks are
POSIX (fcntl) locks, which on Linux are independent of flock.

The lock is taken before SQLite opens the file when possible: through a hard
link SQLite would keep its WAL under the other name, so a refused process
should not open the database at all. Closing any descriptor of a file drops
every POSIX lock the process holds on it, SQLite's included, so a descriptor
opened here is closed only when no connection of ours is open on the file.

The holder's PID is read from ``/proc/locks`` (Linux), which lists each flock
with the inode it is on: nothing is written anywhere to name it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from automations.errors import LedgerError, LedgerLocked

PROC_LOCKS = Path("/proc/locks")


def open_for_lock(path: Path) -> int:
    """A descriptor of the database file (created empty if missing: SQLite accepts that)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise LedgerError(f"cannot open ledger {path} to lock it: {exc}") from exc


def try_lock(fd: int, path: Path) -> None:
    """Take the exclusive lock on ``fd``'s file now, or raise LedgerLocked naming the holder."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise LedgerLocked(path, holder_pid(fd)) from None
    except OSError as exc:
        raise LedgerError(f"cannot lock ledger {path}: {exc}") from exc


def holder_pid(fd: int) -> int | None:
    """The PID holding a flock on ``fd``'s file, from /proc/locks; None where unknown."""
    info = os.fstat(fd)
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        lines = PROC_LOCKS.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5556487 0 EOF" (blocked waiters have "->")
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device:
            pid = fields[4]
            return int(pid) if pid.isdigit() and int(pid) > 0 else None
    return None
