"""What only the PostgreSQL backend has to get right, against a real server: replicas racing on
one database, the write lock, a dropped connection, passwords in URLs, and a schema that is
SQLite's column for column."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from automations.errors import LedgerError
from automations.ledger import Ledger
from automations.ledger.postgres import WRITE_LOCK, translate
from automations.store_url import redact
from tests.ledger_backends import raw_rows
from tests.postgres_server import PostgresServer
from tests.secret_values import DB_PASSWORD

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def claim(ledger: Ledger, key: str) -> bool:
    return ledger.events.claim(
        rule="escalate",
        incident_id=key.split("/")[1],
        incident_reference="INC-1",
        event_key=key,
        reason="live for 2h",
        request_body={"incident": {"severity_id": "01SEV"}},
        now=T0,
    )


def at_once(*work: Callable[[], object]) -> list[object]:
    """Run each callable in its own thread, released together; their results in order."""
    start = threading.Barrier(len(work))
    results: list[object] = [None] * len(work)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = work[index]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return results


def test_two_replicas_claiming_the_same_keys_at_once_win_each_key_once(postgres_url: str) -> None:
    """Two Ledgers (two connections, as two replicas) claim the same 200 keys in the same order
    at the same moment: every key is won by exactly one of them."""
    keys = [f"escalate/{n:03d}/step-0" for n in range(200)]
    with Ledger(postgres_url) as first, Ledger(postgres_url) as second:
        won = at_once(
            lambda: [k for k in keys if claim(first, k)],
            lambda: [k for k in keys if claim(second, k)],
        )
        stored = raw_rows(first, "SELECT count(*) AS n FROM events")[0]["n"]
    by_first, by_second = (set(w) for w in won)  # type: ignore[call-overload]
    assert by_first.isdisjoint(by_second)
    assert by_first | by_second == set(keys)
    assert stored == 200


def test_a_new_database_opened_by_four_replicas_at_once_is_migrated_once(
    postgres_url: str,
) -> None:
    """Four processes' first open of an empty database: each migration is applied once."""
    ledgers = at_once(*[lambda: Ledger(postgres_url)] * 4)
    try:
        opened = [ledger for ledger in ledgers if isinstance(ledger, Ledger)]
        assert len(opened) == 4
        names = opened[0].applied_migrations()
        assert names == opened[3].applied_migrations()
        rows = raw_rows(opened[0], "SELECT name FROM _migrations ORDER BY id")
    finally:
        for ledger in ledgers:
            if isinstance(ledger, Ledger):
                ledger.close()
    assert [row["name"] for row in rows] == names
    assert len(names) == len(set(names)) >= 14


def test_a_transaction_waits_for_the_write_lock_then_fails_naming_the_task(
    postgres_url: str,
) -> None:
    """Another connection holding the write lock past busy_timeout: LedgerError naming the
    task; once it lets go, the same call works (as SQLite's busy timeout)."""
    with (
        Ledger(postgres_url, busy_timeout=0.2) as ledger,
        psycopg.connect(postgres_url, autocommit=True) as other,
    ):
        other.execute(f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})")
        with pytest.raises(LedgerError, match=r"starting a run of 'cycle' failed in ledger .*lock"):
            ledger.runs.start("cycle", now=T0)
        assert claim(ledger, "escalate/1/step-0"), "a single statement does not wait for it"
        other.execute("ROLLBACK")
        assert ledger.runs.start("cycle", now=T0) == 1


def test_a_dropped_connection_fails_one_call_and_the_next_reconnects(
    postgres: PostgresServer, postgres_url: str
) -> None:
    """pg_terminate_backend under an open ledger: the next call is a LedgerError naming its task,
    the one after opens a new connection and sees what was there."""
    with Ledger(postgres_url) as ledger:
        assert claim(ledger, "escalate/1/step-0")
        assert postgres.terminate(postgres_url) == 1
        with pytest.raises(LedgerError, match=r"claiming event 'escalate/2/step-0' failed in"):
            claim(ledger, "escalate/2/step-0")
        assert ledger.events.done_keys(["escalate/1/step-0", "escalate/2/step-0"]) == {
            "escalate/1/step-0"
        }
        assert claim(ledger, "escalate/2/step-0")
        # In a transaction too: the lost connection takes its transaction, nothing half-done.
        assert postgres.terminate(postgres_url) == 1
        with pytest.raises(LedgerError, match="releasing event"):
            ledger.events.release("escalate/2/step-0", now=T0)
        ledger.events.release("escalate/2/step-0", now=T0)
        assert ledger.events.get("escalate/2/step-0") is None


def test_a_connection_interrupted_while_it_is_set_up_is_closed(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (not a driver error) during a new connection's first statement: it is closed
    there, not left open for the garbage collector."""
    opened: list[psycopg.Connection[Any]] = []
    connect = psycopg.connect

    def recorded(*args: Any, **kwargs: Any) -> psycopg.Connection[Any]:
        opened.append(connect(*args, **kwargs))
        return opened[-1]

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(psycopg, "connect", recorded)
    monkeypatch.setattr(psycopg.Connection, "execute", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Ledger(postgres_url)
    assert len(opened) == 1
    assert opened[0].closed


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends


@pytest.mark.parametrize(
    "template",
    [
        "postgresql://automations:{password}@127.0.0.1:{port}/ledger",
        "postgresql://automations@127.0.0.1:{port}/ledger?password={password}",
        "postgresql://automations:{password}@127.0.0.1:{port}/ledger?bogus_option=1",
    ],
)
def test_a_password_in_the_url_never_appears_in_an_error(template: str) -> None:
    """Connection refused, or an option libpq does not know: the error names the ledger by its
    URL with the password as ***, and no exception in the chain holds the password."""
    url = template.format(password=DB_PASSWORD, port=_closed_port())
    with pytest.raises(LedgerError) as caught:
        Ledger(url)
    message = str(caught.value)
    assert message.startswith(f"cannot open ledger {redact(url)}: ")
    assert "***" in message
    chain: BaseException | None = caught.value
    while chain is not None:
        assert DB_PASSWORD not in str(chain)
        chain = chain.__cause__ or chain.__context__


def test_redact_hides_only_the_password() -> None:
    """The user, host, port, database and other options stay readable."""
    assert redact("postgresql://bot:s3cr%40t@db.internal:5433/auto?sslmode=require") == (
        "postgresql://bot:***@db.internal:5433/auto?sslmode=require"
    )
    assert redact("postgres://db/auto?sslmode=require&password=x&user=bot") == (
        "postgres://db/auto?sslmode=require&password=***&user=bot"
    )
    assert redact("postgresql://bot@db/auto") == "postgresql://bot@db/auto"


def test_translate_rewrites_placeholders_outside_quotes_only() -> None:
    """?, :name and % become psycopg's; quoted text, casts and SQLite hints are handled."""
    assert translate("SELECT * FROM t INDEXED BY t_idx WHERE a = ? AND b = :b_1") == (
        "SELECT * FROM t  WHERE a = %s AND b = %(b_1)s"
    )
    assert translate("SELECT 'a ? :b 50%', \"odd:col\" FROM t WHERE x LIKE '%' || ?") == (
        "SELECT 'a ? :b 50%%', \"odd:col\" FROM t WHERE x LIKE '%%' || %s"
    )
    assert translate("SELECT 'it''s :x' , x::text, 5 % 2") == "SELECT 'it''s :x' , x::text, 5 %% 2"


def _sqlite_schema(
    path: Path,
) -> tuple[dict[str, list[tuple[str, str, bool, str | None]]], set[str]]:
    from sqlite_utils import Database

    db = Database(path)
    kinds = {"INTEGER": "integer", "TEXT": "text", "BLOB": "bytes"}
    tables = {
        name: [
            (c.name, kinds[c.type], bool(c.notnull) or bool(c.is_pk), c.default_value)
            for c in db.table(name).columns
        ]
        for name in db.table_names()
        if not name.startswith("_sqlite")
    }
    indexes = {i.name for name in tables for i in db.table(name).indexes if i.origin == "c"}
    db.close()
    return tables, indexes


def _postgres_schema(
    url: str,
) -> tuple[dict[str, list[tuple[str, str, bool, str | None]]], set[str]]:
    kinds = {"bigint": "integer", "text": "text", "bytea": "bytes"}
    tables: dict[str, list[tuple[str, str, bool, str | None]]] = {}
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """
            SELECT table_name, column_name, data_type, is_nullable, column_default,
                   collation_name
            FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name <> '_migrations'
            ORDER BY table_name, ordinal_position
            """
        ).fetchall()
        indexes = {
            name
            for (name,) in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                "AND indexname NOT LIKE '%%_pkey' AND indexname NOT LIKE '_migrations%%'"
            ).fetchall()
        }
    for table, column, kind, nullable, default, collation in rows:
        if kind == "text":
            assert collation == "C", f"{table}.{column}: text compares byte by byte, as in SQLite"
        value = None if default is None else str(default).split("::")[0]
        tables.setdefault(table, []).append((column, kinds[kind], nullable == "NO", value))
    return tables, indexes


def test_the_postgres_schema_is_the_sqlite_schema(tmp_path: Path, postgres_url: str) -> None:
    """Every table, column (in order), type, NOT NULL, default and index of SQLite's migrations
    exists on PostgreSQL and nothing more: a later SQLite migration fails this until its twin is
    written in pg_migrations.py."""
    Ledger(tmp_path / "ledger.db").close()
    Ledger(postgres_url).close()
    sqlite_tables, sqlite_indexes = _sqlite_schema(tmp_path / "ledger.db")
    postgres_tables, postgres_indexes = _postgres_schema(postgres_url)
    # An id is SQLite's INTEGER PRIMARY KEY (the rowid), an identity column here.
    for columns in sqlite_tables.values():
        columns[:] = [(n, k, nn or n == "id", d) for n, k, nn, d in columns]
    for columns in postgres_tables.values():
        columns[:] = [(n, k, nn, None if n == "id" else d) for n, k, nn, d in columns]
    assert postgres_tables == sqlite_tables
    assert postgres_indexes == sqlite_indexes
    with Ledger(tmp_path / "ledger.db") as lite, Ledger(postgres_url) as pg:
        assert lite.applied_migrations() == pg.applied_migrations()
        assert set(lite.tables()) == set(pg.tables())
        assert pg.tables().index("runs") < pg.tables().index("run_rules")
