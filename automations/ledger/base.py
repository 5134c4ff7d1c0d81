"""The ledger's connection: open and migrate, one-daemon lock, locking and error translation."""

from __future__ import annotations

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
from automations.errors import LedgerError
from automations.ledger.filelock import open_for_lock, try_lock
from automations.ledger.migrations import build_migrations
from automations.ledger.owners import this_process

MEMORY = ":memory:"

Params = Sequence[Any] | dict[str, Any]


def to_text(moment: datetime) -> str:
    """ISO 8601 UTC with fixed width, so comparing the text compares the times."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: the ledger stores timezone-aware UTC only")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def from_text(text: str) -> datetime:
    """The inverse of ``to_text``; ValueError for text that is not an aware time."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{text!r} has no timezone: the ledger stores timezone-aware UTC only")
    return moment


def maybe_time(text: str | None) -> datetime | None:
    """``from_text`` for nullable columns."""
    return None if text is None else from_text(text)


def current(now: datetime | None) -> datetime:
    """The injected clock if any, else the wall clock."""
    return host_now() if now is None else now


class LedgerBase:
    """One SQLite connection shared by every thread, serialised by a re-entrant lock."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 5.0, lock: bool = False) -> None:
        self.path = Path(path)
        self.memory = str(path) == MEMORY
        self._lock = threading.RLock()
        self._file_fd: int | None = None  # for the one-daemon lock; see acquire_lock
        self._locked = False
        self._closed = False
        # Recorded on the claims and runs this ledger writes (see owners.py).
        self.owner = this_process().text()
        if lock and not self.memory:
            self._lock_before_opening()
        try:
            # check_same_thread=False: APScheduler jobs run in worker threads; self._lock
            # serialises them. The timeout is SQLite's busy handler for other processes.
            conn = sqlite3.connect(str(path), timeout=busy_timeout, check_same_thread=False)
        except sqlite3.Error as exc:
            self._release_file()
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
            self._release_file()
            raise LedgerError(f"cannot open ledger {self.path}: {exc}") from exc

    @classmethod
    def open(cls, path: str | Path, *, busy_timeout: float = 5.0, lock: bool = False) -> Self:
        """Open (creating and migrating if needed) the ledger at ``path``; ``lock`` takes the
        one-daemon lock first, or raises LedgerLocked without opening the database."""
        return cls(path, busy_timeout=busy_timeout, lock=lock)

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
        """Hold the one-daemon lock on the database file until ``close()``, else LedgerLocked.

        ``Ledger(path, lock=True)`` takes it before the database is opened, which is
        better (see filelock.py); this takes it on a ledger already open.
        """
        with self._lock:
            if self._locked or self.memory:
                return
            if self._file_fd is None:
                self._file_fd = open_for_lock(self.path)
            try_lock(self._file_fd, self.path)  # a refused descriptor is kept until close()
            self._locked = True

    @property
    def locked(self) -> bool:
        """Whether this ledger holds the one-daemon lock."""
        return self._locked

    def _lock_before_opening(self) -> None:
        fd = open_for_lock(self.path)
        try:
            try_lock(fd, self.path)
        except BaseException:
            os.close(fd)  # no connection of ours is open yet: closing drops no SQLite lock
            raise
        self._file_fd, self._locked = fd, True

    def _release_file(self) -> None:
        fd, self._file_fd = self._file_fd, None
        self._locked = False
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock

    def _meta(self, key: str) -> str | None:
        """One value of the ``meta`` table (small facts that outlive a process)."""
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
                self._release_file()

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

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """A transaction of its own, or part of the caller's when one is open (record_baseline)."""
        if self._db.conn.in_transaction:
            yield
        else:
            with self._transaction():
                yield

    def _rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        return list(self._db.query(sql, params))

    def _one(self, sql: str, params: Params = ()) -> dict[str, Any] | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        """Run one write statement; it commits unless a transaction is open."""
        return self._db.execute(sql, params)
