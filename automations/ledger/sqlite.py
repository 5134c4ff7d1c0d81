"""The SQLite backend (the embedded default): sqlite-utils, WAL, the one-daemon file lock."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from automations.errors import LedgerError
from automations.ledger.backend import Backend, Params, parents_first
from automations.ledger.filelock import open_for_lock, try_lock
from automations.ledger.migrations import build_migrations

MEMORY = ":memory:"


class SQLiteBackend(Backend):
    """One sqlite3 connection (shared by threads: the ledger's lock serialises them)."""

    engine = "sqlite"
    errors = (sqlite3.Error,)

    def __init__(self, path: str | Path, *, busy_timeout: float, lock: bool) -> None:
        self.path = Path(path)
        self.name = str(path)
        self.memory = str(path) == MEMORY
        self.file = None if self.memory else self.path
        self._fd: int | None = None  # for the one-daemon lock; see acquire_lock
        self._locked = False
        if lock and not self.memory:
            self._lock_before_opening()
        try:
            # check_same_thread=False: APScheduler jobs run in worker threads; the ledger's
            # lock serialises them. The timeout is SQLite's busy handler for other processes.
            conn = sqlite3.connect(str(path), timeout=busy_timeout, check_same_thread=False)
        except sqlite3.Error as exc:
            self._release_file()
            raise LedgerError(f"cannot open ledger {self.name}: {exc}") from exc
        try:
            self.db = Database(conn, execute_plugins=False)
            self.db.execute(f"PRAGMA busy_timeout = {round(busy_timeout * 1000)}")
            if not self.memory:
                # WAL: `automations history` can read while the daemon writes.
                # synchronous stays FULL: a claim must survive a power cut.
                self.db.enable_wal()
        except sqlite3.Error as exc:
            conn.close()
            self._release_file()
            raise LedgerError(f"cannot open ledger {self.name}: {exc}") from exc

    # -- statements -------------------------------------------------------------

    def rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        return list(self.db.query(sql, params))

    def execute(self, sql: str, params: Params = ()) -> int:
        return self.db.execute(sql, params).rowcount

    def begin(self) -> None:
        # IMMEDIATE: take the write lock up front, so read-then-write never deadlocks.
        self.db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.db.execute("COMMIT")

    def rollback(self) -> None:
        if self.db.conn.in_transaction:
            self.db.rollback()

    @property
    def in_transaction(self) -> bool:
        return self.db.conn.in_transaction

    # -- schema -----------------------------------------------------------------

    def migrate(self) -> None:
        migrations = build_migrations()
        if not migrations.pending(self.db):
            return
        # One write transaction around the whole set: a second process opening a
        # brand-new ledger at the same moment waits, then finds nothing pending.
        self.begin()
        try:
            migrations.apply(self.db)
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def applied_migrations(self) -> list[str]:
        return [m.name for m in build_migrations().applied(self.db)]

    def tables(self) -> list[str]:
        names = [
            name
            for name in self.db.table_names()
            if not name.startswith(("sqlite_", "_sqlite_")) and name != "_migrations"
        ]
        return parents_first(
            {name: {fk.other_table for fk in self.db.table(name).foreign_keys} for name in names}
        )

    # -- whole tables -------------------------------------------------------------

    def columns(self, table: str) -> list[str]:
        return [column.name for column in self.db.table(table).columns]

    def stream(self, table: str, columns: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        cursor = self.db.conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid")
        yield from cursor  # sqlite3 fetches as it is iterated

    def load(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        marks = ", ".join("?" for _ in columns)
        insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        return self.db.conn.executemany(insert, rows).rowcount

    # -- one daemon per ledger ----------------------------------------------------

    def acquire_lock(self) -> None:
        """Hold the flock on the database file until ``close()``, else LedgerLocked.

        ``Ledger(path, lock=True)`` takes it before the database is opened, which is
        better (see filelock.py); this takes it on a ledger already open.
        """
        if self._locked or self.memory:
            return
        if self._fd is None:
            self._fd = open_for_lock(self.path)
        try_lock(self._fd, self.path)  # a refused descriptor is kept until close()
        self._locked = True

    @property
    def locked(self) -> bool:
        return self._locked

    def _lock_before_opening(self) -> None:
        fd = open_for_lock(self.path)
        try:
            try_lock(fd, self.path)
        except BaseException:
            os.close(fd)  # no connection of ours is open yet: closing drops no SQLite lock
            raise
        self._fd, self._locked = fd, True

    def _release_file(self) -> None:
        fd, self._fd = self._fd, None
        self._locked = False
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock

    def close(self) -> None:
        try:
            self.db.close()
        except sqlite3.Error as exc:
            raise LedgerError(f"closing ledger {self.name} failed: {exc}") from exc
        finally:
            self._release_file()
