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
from typing import Any

from automations.clock import host_now
from automations.errors import LedgerError
from automations.ledger.backend import Backend, Params
from automations.ledger.owners import this_process
from automations.ledger.sqlite import MEMORY, SQLiteBackend
from automations.store_url import is_postgres_url

__all__ = [
    "MEMORY",
    "Database",
    "Params",
    "Table",
    "current",
    "from_text",
    "maybe_time",
    "to_text",
]


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


class Database:
    """One connection (SQLite or PostgreSQL) shared by every thread and every table of a
    ledger, serialised by a re-entrant lock.

    The tables (``Table`` below) run their SQL through it; ``Ledger`` owns it and its
    lifecycle; ``ledger copy`` and tests reach it as ``ledger.database``.
    """

    def __init__(self, where: str | Path, *, busy_timeout: float = 5.0, lock: bool = False) -> None:
        self._lock = threading.RLock()
        self._closed = False
        # Recorded on the claims and runs this ledger writes (see owners.py).
        self.owner = this_process().text()
        self.backend = open_backend(where, busy_timeout=busy_timeout, lock=lock)
        #: The ledger as messages name it: the file, or the URL without its password.
        self.name = self.backend.name
        try:
            self.backend.migrate()
        except self.backend.errors as exc:
            self.backend.lost(exc)
            self.backend.close()
            raise LedgerError(
                f"cannot open ledger {self.name}: {self.backend.describe(exc)}"
            ) from exc
        except BaseException:
            self.backend.close()
            raise

    def acquire_lock(self) -> None:
        with self._lock:
            self.backend.acquire_lock()

    def close(self) -> None:
        """Close the connection and release the daemon lock; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.backend.close()

    @contextmanager
    def guard(self, doing: str) -> Iterator[None]:
        """Serialise threads and turn the driver's errors into LedgerError naming the task and
        the ledger (never a password)."""
        with self._lock:
            backend = self.backend
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
    def transaction(self) -> Iterator[None]:
        """A write transaction holding the write lock from the start (SQLite's BEGIN
        IMMEDIATE; see postgres.py), so read-then-write never deadlocks nor interleaves."""
        self.backend.begin()
        try:
            yield
        except BaseException:
            self.backend.rollback()
            raise
        try:
            self.backend.commit()
        except BaseException:
            self.backend.rollback()
            raise

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """A transaction of its own, or part of the caller's when one is open (record_baseline)."""
        if self.backend.in_transaction:
            yield
        else:
            with self.transaction():
                yield

    def rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        return self.backend.rows(sql, params)

    def one(self, sql: str, params: Params = ()) -> dict[str, Any] | None:
        rows = self.rows(sql, params)
        return rows[0] if rows else None

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one write statement; it commits unless a transaction is open. Returns how many
        rows it changed."""
        return self.backend.execute(sql, params)

    # -- the meta table: small facts that outlive a process ---------------------------

    def meta(self, key: str) -> str | None:
        """One value of the ``meta`` table; the caller holds ``guard``."""
        row = self.one("SELECT value FROM meta WHERE key = ?", [key])
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        """Set one value of the ``meta`` table; the caller holds ``guard``."""
        self.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )


class Table:
    """One table (or a few that change together) of a ledger, on its shared ``Database``."""

    def __init__(self, db: Database) -> None:
        self._db = db


def open_backend(where: str | Path, *, busy_timeout: float, lock: bool) -> Backend:
    """The backend for a path or URL: PostgreSQL for ``postgresql://``, else a SQLite file."""
    if isinstance(where, str) and is_postgres_url(where):
        from automations.ledger.postgres import PostgresBackend

        return PostgresBackend(where, busy_timeout=busy_timeout)
    return SQLiteBackend(where, busy_timeout=busy_timeout, lock=lock)
