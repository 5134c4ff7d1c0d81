"""The ledger's own tests run on both backends: a fresh SQLite file, or a fresh PostgreSQL
database on the worker's real server (tests/postgres_server.py).

``ledger_target`` is where a fresh ledger lives (a path or a URL; open as many
``Ledger(ledger_target)`` as a test needs: each is its own connection),
``ledger`` one opened there, ``store_harness`` the engine harness with its
ledger on either backend. ``raw`` writes into the tables past the ledger's own
checks, on either engine, to make rows no version would write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from automations.clock import host_now
from automations.ledger import Ledger
from automations.ledger.backend import Params
from automations.ledger.migrations import MIGRATION_SET, build_migrations
from automations.ledger.pg_migrations import MIGRATIONS, MIGRATIONS_TABLE, MIGRATIONS_TABLE_DDL
from automations.ledger.postgres import translate
from tests.engine_harness import Harness

BACKENDS = ("sqlite", "postgresql")

LedgerTarget = str | Path


@pytest.fixture(params=BACKENDS)
def ledger_target(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerTarget:
    """Where a fresh ledger lives: a SQLite file under tmp_path, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "automations.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def ledger(ledger_target: LedgerTarget) -> Iterator[Ledger]:
    """A fresh ledger on each backend."""
    with Ledger(ledger_target) as opened:
        yield opened


@pytest.fixture
def store_harness(request: pytest.FixtureRequest, ledger_target: LedgerTarget) -> Harness:
    """The engine harness (tests/engine_harness.py) with its ledger on each backend."""
    harness: Harness = request.getfixturevalue("harness")
    if isinstance(ledger_target, str):
        harness.store_url = ledger_target
    return harness


def raw(ledger: Ledger, sql: str, params: Params = ()) -> int:
    """Run a write statement as written (``?`` placeholders) on either engine; rows changed."""
    with ledger.database.guard("a test's own statement"):
        return ledger.database.execute(sql, params)


def raw_rows(ledger: Ledger, sql: str, params: Params = ()) -> list[dict[str, Any]]:
    """Rows of a query as written, on either engine."""
    with ledger.database.guard("a test's own query"):
        return ledger.database.rows(sql, params)


@contextmanager
def older_ledger(target: LedgerTarget, stop_before: str) -> Iterator[Callable[..., object]]:
    """A ledger as an older version left it (migrations applied up to ``stop_before``), and a
    function that runs a statement on it (``?`` placeholders), as that version would."""
    if isinstance(target, Path):
        db = Database(target)
        build_migrations().apply(db, stop_before=stop_before)
        try:
            yield lambda sql, params=(): db.execute(sql, params)
        finally:
            db.close()
        return
    import psycopg

    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(MIGRATIONS_TABLE_DDL)
        for name, ddl in MIGRATIONS:
            if name == stop_before:
                break
            conn.execute(ddl)
            conn.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (migration_set, name, applied_at) "
                "VALUES (%s, %s, %s)",
                [MIGRATION_SET, name, str(host_now())],
            )
        yield lambda sql, params=(): conn.execute(translate(sql), tuple(params))
