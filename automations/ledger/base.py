"""The ledger's connection: open and migrate, one-daemon lock, locking and error translation."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlite_utils import Database

from automations.clock import host_now
from automations.errors import AutomationsError, LedgerError
from automations.ledger.migrations import build_migrations

MEMORY = ":memory:"

Params = Sequence[Any] | dict[str, Any]


class LedgerLocked(AutomationsError):
    """Another daemon already owns this ledger; two would race each other's claims."""

    exit_code = 75  # EX_TEMPFAIL: it can start once the other one has stopped

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f"PID {pid}" if pid is not None else "another process (PID not recorded yet)"
        super().__init__(
            f"ledger {path} is in use by {holder} (lock file {lock_path(path)}); "
            "stop that daemon first, or point [store] path at another ledger"
        )
        self.path = path
        self.pid = pid


def lock_path(path: Path) -> Path:
    """Where the one-daemon lock lives: beside the database, never inside it."""
    return path.with_name(path.name + ".lock")


def to_text(moment: datetime) -> str:
    """ISO 8601 UTC with fixed width, so comparing the text compares the times."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: the ledger stores timezone-aware UTC only")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def from_text(text: str) -> datetime:
    """The inverse of ``to_text``."""
    return datetime.fromisoformat(text)


def maybe_time(text: str | None) -> datetime | None:
    """``from_text`` for nullable columns."""
    return None if text is None else from_text(text)


def current(now: datetime | None) -> datetime:
    """The injected clock if any, else the wall clock."""
    return host_now() if now is None else now


class LedgerBase:
    """One SQLite connection shared by every thread, serialised by a re-entrant lock."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.memory = str(path) == MEMORY
        self._lock = threading.RLock()
        self._lock_fd: int | None = None
        self._closed = False
        try:
            # check_same_thread=False: APScheduler jobs run in worker threads; self._lock
            # serialises them. The timeout is SQLite's busy handler for other processes.
            conn = sqlite3.connect(str(path), timeout=busy_timeout, check_same_thread=False)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open ledger {self.path}: {exc}") from exc
        try:
            self._db = Database(conn, execute_plugins=False)
            self._db.execute(f"PRAGMA busy_timeout = {round(busy_timeout * 1000)}")
            if not self.memory:
                # WAL: `automations history` can read while the daemon writes.
                # synchronous stays FULL: a claim must survive a power cut.
                self._db.enable_wal()
            self._migrate()
        except sqlite3.Error as exc:
            conn.close()
            raise LedgerError(f"cannot open ledger {self.path}: {exc}") from exc

    @classmethod
    def open(cls, path: str | Path, *, busy_timeout: float = 5.0) -> Self:
        """Open (creating and migrating if needed) the ledger at ``path``."""
        return cls(path, busy_timeout=busy_timeout)

    def _migrate(self) -> None:
        migrations = build_migrations()
        if not migrations.pending(self._db):
            return
        # One write transaction around the whole set: a second process opening a
        # brand-new ledger at the same moment waits, then finds nothing pending.
        with self._transaction():
            migrations.apply(self._db)

    def applied_migrations(self) -> list[str]:
        """Names of the migrations this ledger has had, in the order applied."""
        with self._guard("listing migrations"):
            return [m.name for m in build_migrations().applied(self._db)]

    # -- one daemon per ledger ------------------------------------------------

    def acquire_lock(self) -> None:
        """Hold an exclusive OS lock on ``<path>.lock`` until ``close()``, else LedgerLocked."""
        with self._lock:
            if self._lock_fd is not None or self.memory:
                return
            where = lock_path(self.path)
            try:
                fd = os.open(where, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise LedgerError(f"cannot create lock file {where}: {exc}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                os.close(fd)
                raise LedgerLocked(self.path, pid) from None
            except OSError as exc:
                os.close(fd)
                raise LedgerError(f"cannot lock {where}: {exc}") from exc
            # The PID is only for the message a second daemon prints; flock is the lock.
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            self._lock_fd = fd

    def _release_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # a stale PID would mislead; the file itself stays
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    # -- lifecycle --------------------------------------------------------------

    def close(self) -> None:
        """Close the connection and release the daemon lock; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._db.close()
            except sqlite3.Error as exc:
                raise LedgerError(f"closing ledger {self.path} failed: {exc}") from exc
            finally:
                self._release_lock()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}>"

    # -- helpers for the table modules ------------------------------------------

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Serialise threads and turn sqlite3 errors into LedgerError naming the task and file."""
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise LedgerError(f"{doing} failed in ledger {self.path}: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE: take the write lock up front, so read-then-write never deadlocks."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.rollback()
            raise
        try:
            self._db.execute("COMMIT")
        except BaseException:
            self._db.rollback()
            raise

    def _rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        return list(self._db.query(sql, params))

    def _one(self, sql: str, params: Params = ()) -> dict[str, Any] | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        """Run one write statement; it commits unless a transaction is open."""
        return self._db.execute(sql, params)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
