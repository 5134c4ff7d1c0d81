"""The ledger's connection: open and migrate, thread locking and error translation.

The connection itself is a backend (backend.py): SQLite (sqlite.py) or
PostgreSQL (postgres.py), chosen by ``open_backend`` from a path or a URL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from automations.clock import host_now
from automations.errors import LedgerError
from automations.ledger.backend import Backend, Params
from automations.ledger.owners import this_process
from automations.ledger.sqlite import MEMORY, SQLiteBackend
from automations.store_url import is_postgres_url

__all__ = ["MEMORY", "LedgerBase", "Params", "current", "from_text", "maybe_time", "to_text"]


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
    """One connection (SQLite or PostgreSQL) shared by every thread, serialised by a re-entrant
    lock."""

    def __init__(self, where: str | Path, *, busy_timeout: float = 5.0, lock: bool = False) -> None:
        self._lock = threading.RLock()
        self._closed = False
        # Recorded on the claims and runs this ledger writes (see owners.py).
        self.owner = this_process().text()
        self._backend = open_backend(where, busy_timeout=busy_timeout, lock=lock)
        #: The ledger as messages name it: the file, or the URL without its password.
        self.name = self._backend.name
        try:
            self._backend.migrate()
        except self._backend.errors as exc:
            self._backend.lost(exc)
            self._backend.close()
            raise LedgerError(
                f"cannot open ledger {self.name}: {self._backend.describe(exc)}"
            ) from exc
        except BaseException:
            self._backend.close()
            raise

    @classmethod
    def open(cls, where: str | Path, *, busy_timeout: float = 5.0, lock: bool = False) -> Self:
        """Open (creating and migrating if needed) the ledger at ``where``: a SQLite file
        path, ``":memory:"``, or a ``postgresql://`` URL.

        ``lock`` takes SQLite's one-daemon lock first, or raises LedgerLocked without
        opening the database. On PostgreSQL it does nothing: several replicas share the
        database, and the leader lock (not the ledger) decides which one acts.
        """
        return cls(where, busy_timeout=busy_timeout, lock=lock)

    @property
    def path(self) -> Path | None:
        """The SQLite file; None in memory and on PostgreSQL."""
        return self._backend.file

    @property
    def engine(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._backend.engine

    def applied_migrations(self) -> list[str]:
        """Names of the migrations this ledger has had, in the order applied."""
        with self._guard("listing migrations"):
            return self._backend.applied_migrations()

    def tables(self) -> list[str]:
        """The ledger's tables, each after those it references (``ledger copy``'s order)."""
        with self._guard("listing tables"):
            return self._backend.tables()

    # -- one daemon per ledger ------------------------------------------------

    def acquire_lock(self) -> None:
        """Hold the one-daemon lock on the database file until ``close()``, else LedgerLocked.

        ``Ledger(path, lock=True)`` takes it before the database is opened, which is
        better (see filelock.py); this takes it on a ledger already open. A no-op on
        PostgreSQL (see ``open``).
        """
        with self._lock:
            self._backend.acquire_lock()

    @property
    def locked(self) -> bool:
        """Whether this ledger holds SQLite's one-daemon lock (never on PostgreSQL)."""
        return self._backend.locked

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
            self._backend.close()

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
        return f"<{type(self).__name__} {self.name}>"

    # -- helpers for the table modules ------------------------------------------

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Serialise threads and turn the driver's errors into LedgerError naming the task and
        the ledger (never a password)."""
        with self._lock:
            backend = self._backend
            if self._closed:  # PostgreSQL would quietly connect again
                raise LedgerError(f"{doing} failed in ledger {self.name}: the ledger is closed")
            try:
                yield
            except backend.errors as exc:
                backend.lost(exc)  # a dropped connection is opened again by the next call
                raise LedgerError(
                    f"{doing} failed in ledger {self.name}: {backend.describe(exc)}"
                ) from exc

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """A write transaction holding the write lock from the start (SQLite's BEGIN
        IMMEDIATE; see postgres.py), so read-then-write never deadlocks nor interleaves."""
        self._backend.begin()
        try:
            yield
        except BaseException:
            self._backend.rollback()
            raise
        try:
            self._backend.commit()
        except BaseException:
            self._backend.rollback()
            raise

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """A transaction of its own, or part of the caller's when one is open (record_baseline)."""
        if self._backend.in_transaction:
            yield
        else:
            with self._transaction():
                yield

    def _rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        return self._backend.rows(sql, params)

    def _one(self, sql: str, params: Params = ()) -> dict[str, Any] | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _execute(self, sql: str, params: Params = ()) -> int:
        """Run one write statement; it commits unless a transaction is open. Returns how many
        rows it changed."""
        return self._backend.execute(sql, params)


def open_backend(where: str | Path, *, busy_timeout: float, lock: bool) -> Backend:
    """The backend for a path or URL: PostgreSQL for ``postgresql://``, else a SQLite file."""
    if isinstance(where, str) and is_postgres_url(where):
        from automations.ledger.postgres import PostgresBackend

        return PostgresBackend(where, busy_timeout=busy_timeout)
    return SQLiteBackend(where, busy_timeout=busy_timeout, lock=lock)
