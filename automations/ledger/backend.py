"""Where the ledger's SQL runs: one connection behind a small object per database engine.

The table modules write each statement once, in SQL both engines accept: ``?``
or ``:name`` placeholders, ``ON CONFLICT``, ``RETURNING``, row values, ``CASE``
instead of boolean sums. What must still differ is translated by the backend
alone (sqlite.py keeps the text as written; postgres.py rewrites placeholders
and drops SQLite's ``INDEXED BY`` hints). A backend is not thread-safe: the
ledger serialises every call under its own lock (base.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

Params = Sequence[Any] | dict[str, Any]


class Backend(ABC):
    """One connection to one ledger database."""

    #: The ledger as messages name it: the file, or the URL without its password.
    name: str
    #: The SQLite file (None in memory and on PostgreSQL): daemon.py watches it.
    file: Path | None = None
    #: The driver's exceptions; the ledger turns them into LedgerError.
    errors: tuple[type[BaseException], ...] = ()
    #: "sqlite" or "postgresql", for messages and ``ledger copy``.
    engine: str

    @abstractmethod
    def rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        """Run a statement that returns rows (SELECT, or a write with RETURNING)."""

    @abstractmethod
    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one write statement (committed at once unless a transaction is open);
        returns how many rows it changed."""

    @abstractmethod
    def begin(self) -> None:
        """Open a write transaction that holds the ledger's write lock from the start, so a
        read followed by a write sees no other writer in between (BEGIN IMMEDIATE)."""

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def rollback(self) -> None:
        """Undo the open transaction; never raises for a connection that is already lost."""

    @property
    @abstractmethod
    def in_transaction(self) -> bool: ...

    @abstractmethod
    def migrate(self) -> None:
        """Apply the migrations this database has not had, each once, under the write lock."""

    @abstractmethod
    def applied_migrations(self) -> list[str]:
        """Names of the migrations applied, in order."""

    @abstractmethod
    def tables(self) -> list[str]:
        """The ledger's tables (not the migrations' own), parents before the tables that
        reference them: the order ``ledger copy`` fills them in."""

    # -- whole tables, for ``ledger copy`` ------------------------------------------

    @abstractmethod
    def columns(self, table: str) -> list[str]:
        """The table's columns, in order."""

    @abstractmethod
    def stream(self, table: str, columns: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """Every row of ``table`` (those columns), read as it goes rather than all at once."""

    @abstractmethod
    def load(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Insert ``rows`` as they are (ids included) in the open transaction; how many. The
        next id a new row gets follows the largest loaded."""

    def count(self, table: str) -> int:
        return int(self.rows(f"SELECT count(*) AS n FROM {table}")[0]["n"])

    @abstractmethod
    def close(self) -> None: ...

    def describe(self, exc: BaseException) -> str:
        """The driver's error in one line, with no secret in it."""
        return " ".join(str(exc).split())

    def lost(self, exc: BaseException) -> None:  # noqa: B027 - most backends never lose it
        """``exc`` was raised by a call: forget a connection it broke (the next call opens a
        new one)."""

    # The one-daemon lock is SQLite's alone (see sqlite.py); elsewhere these do nothing.

    def acquire_lock(self) -> None:  # noqa: B027 - a no-op unless the engine has a file lock
        """Hold the one-daemon lock until ``close()``; LedgerLocked if another process has it."""

    @property
    def locked(self) -> bool:
        return False


def parents_first(parents: dict[str, set[str]]) -> list[str]:
    """Table names, each after the tables it references (``parents``), else in the order given."""
    ordered: list[str] = []
    while len(ordered) < len(parents):
        ready = [n for n, p in parents.items() if n not in ordered and p <= {*ordered, n}]
        ordered += ready or [n for n in parents if n not in ordered]  # a cycle: as given
    return ordered
