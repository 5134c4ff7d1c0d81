"""The PostgreSQL backend: psycopg 3 (imported only when a ledger URL is opened).

One connection, in autocommit mode: a single statement is its own transaction,
as with SQLite outside BEGIN. The table modules' SQL is translated here and
only here (``translate``): ``?`` and ``:name`` become ``%s`` and ``%(name)s``,
a literal ``%`` is doubled, SQLite's ``INDEXED BY`` hints are dropped.

Transactions: SQLite's ``BEGIN IMMEDIATE`` takes the database's write lock up
front. Here ``begin`` opens a READ COMMITTED transaction and takes a
transaction-level advisory lock (``WRITE_LOCK``) that every ledger transaction
takes, so two read-then-write transactions never interleave, across processes
too. A single statement outside a transaction does not take it: each one is
written to re-check, in its own WHERE, the state it changes (a claim's unique
key, ``state = 'planned'``, a lease's owner), and READ COMMITTED re-evaluates
that WHERE on the newest version of a row another transaction just changed, so
of two writers only one wins. The lock waits at most ``busy_timeout`` (as
SQLite's busy handler does), then the call fails with LedgerError.

A lost connection (a server restart, ``pg_terminate_backend``) fails the call
that met it with LedgerError; the next call opens a new connection.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from automations.clock import host_now
from automations.ledger.backend import Backend, Params, parents_first
from automations.ledger.migrations import MIGRATION_SET
from automations.ledger.pg_migrations import MIGRATIONS, MIGRATIONS_TABLE, MIGRATIONS_TABLE_DDL
from automations.store_url import redact, scrub

if TYPE_CHECKING:
    import psycopg

# pg_advisory_xact_lock's key for "a ledger transaction is writing" (BEGIN IMMEDIATE). Other
# advisory locks on the same database (the leader lock) must use other keys.
WRITE_LOCK = 0x6175746F6D6C6467  # "automldg"
# Defaults a URL may override (its own parameters win).
CONNECT_DEFAULTS = {
    "connect_timeout": "10",
    "application_name": "automations",
    # A dead peer is noticed within about a minute rather than the kernel's two hours.
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}

# A quoted string or identifier (kept as written), or one of what is translated.
_TOKENS = re.compile(
    r"""(?P<quoted>'(?:[^']|'')*'|"(?:[^"]|"")*")"""
    r"|(?P<cast>::)"
    r"|(?P<named>:[A-Za-z_]\w*)"
    r"|(?P<positional>\?)"
    r"|(?P<percent>%)"
    r"|(?P<hint>\bINDEXED\s+BY\s+\w+)",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """SQLite's placeholders as psycopg's, outside quotes; ``INDEXED BY`` dropped."""

    def replace(match: re.Match[str]) -> str:
        kind = match.lastgroup
        text = match.group()
        if kind == "named":
            return f"%({text[1:]})s"
        if kind == "positional":
            return "%s"
        if kind == "percent":
            return "%%"
        if kind == "hint":
            return ""
        if kind == "quoted":
            return text.replace("%", "%%")
        return text

    return _TOKENS.sub(replace, sql)


class PostgresBackend(Backend):
    """One psycopg connection to the ledger's database."""

    engine = "postgresql"

    def __init__(self, url: str, *, busy_timeout: float) -> None:
        import psycopg

        self.url = url
        self.name = redact(url)
        self.errors = (psycopg.Error,)
        self.busy_timeout = busy_timeout
        self._conn: psycopg.Connection[dict[str, Any]] | None = None

    # -- connection -------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[dict[str, Any]]:
        """The open connection, or a new one (the first call, or after one was lost)."""
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo
        from psycopg.rows import dict_row

        try:
            given = conninfo_to_dict(self.url)
            options = {k: v for k, v in CONNECT_DEFAULTS.items() if k not in given}
            conninfo = make_conninfo(self.url, **options)
            conn = psycopg.connect(conninfo, autocommit=True, row_factory=dict_row)
            try:
                # A transaction waits this long for the write lock (or a row lock), like
                # SQLite's busy timeout; UTC for anything the server formats.
                conn.execute(
                    "SELECT set_config('lock_timeout', %s, false), "
                    "set_config('TimeZone', 'UTC', false)",
                    [f"{round(self.busy_timeout * 1000)}ms"],
                )
            except BaseException:
                conn.close()  # whatever stopped the set-up (a Ctrl-C too): not left open
                raise
        except psycopg.Error as exc:
            # The driver's error may quote the connection string: passed on scrubbed, and
            # without the original attached.
            raise psycopg.OperationalError(f"cannot connect: {self.describe(exc)}") from None
        self._conn = conn
        return conn

    def lost(self, exc: BaseException) -> None:
        conn = self._conn
        if conn is not None and (conn.broken or conn.closed):
            self._conn = None
            conn.close()

    def describe(self, exc: BaseException) -> str:
        return scrub(super().describe(exc), self.url)

    # -- statements -------------------------------------------------------------

    def rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        cursor = self._connection().execute(translate(sql), _params(params))
        return cursor.fetchall()

    def execute(self, sql: str, params: Params = ()) -> int:
        return self._connection().execute(translate(sql), _params(params)).rowcount

    def begin(self) -> None:
        # One round trip: no parameters, so psycopg sends both statements as one query.
        try:
            self._connection().execute(f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})")
        except BaseException:
            self.rollback()  # BEGIN went through, the lock did not (a timeout): end it
            raise

    def commit(self) -> None:
        self._connection().execute("COMMIT")

    def rollback(self) -> None:
        conn = self._conn
        if conn is None or conn.closed:
            return  # a lost connection took its transaction with it
        try:
            conn.execute("ROLLBACK")
        except self.errors as exc:
            self.lost(exc)

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        conn = self._conn
        return conn is not None and conn.info.transaction_status in (
            TransactionStatus.INTRANS,
            TransactionStatus.INERROR,
        )

    # -- schema -----------------------------------------------------------------

    def migrate(self) -> None:
        conn = self._connection()
        if self._pending(conn) == []:
            return
        # Under the write lock: a second process opening a brand-new ledger waits, then
        # finds nothing pending.
        self.begin()
        try:
            conn.execute(MIGRATIONS_TABLE_DDL)
            for name in self._pending(conn) or []:
                sql = next(ddl for migration, ddl in MIGRATIONS if migration == name)
                conn.execute(sql)
                conn.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (migration_set, name, applied_at) "
                    "VALUES (%s, %s, %s)",
                    [MIGRATION_SET, name, str(host_now())],
                )
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def _pending(self, conn: psycopg.Connection[dict[str, Any]]) -> list[str] | None:
        """Migrations not yet applied; None when there is no migrations table yet."""
        if not self._has_table(conn, MIGRATIONS_TABLE):
            return None
        applied = set(self._applied(conn))
        return [name for name, _ in MIGRATIONS if name not in applied]

    def applied_migrations(self) -> list[str]:
        conn = self._connection()
        return self._applied(conn) if self._has_table(conn, MIGRATIONS_TABLE) else []

    def _applied(self, conn: psycopg.Connection[dict[str, Any]]) -> list[str]:
        rows = conn.execute(
            f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = %s ORDER BY id",
            [MIGRATION_SET],
        ).fetchall()
        return [row["name"] for row in rows]

    @staticmethod
    def _has_table(conn: psycopg.Connection[dict[str, Any]], name: str) -> bool:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL AS found", [name]).fetchone()
        return bool(row and row["found"])

    def tables(self) -> list[str]:
        rows = (
            self._connection()
            .execute(
                """
            SELECT c.relname AS name,
                   coalesce((SELECT array_agg(p.relname::text) FROM pg_constraint f
                             JOIN pg_class p ON p.oid = f.confrelid
                             WHERE f.conrelid = c.oid AND f.contype = 'f'), '{}') AS parents
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'r' AND n.nspname = current_schema() AND c.relname <> %s
            ORDER BY c.oid
            """,
                [MIGRATIONS_TABLE],
            )
            .fetchall()
        )
        return parents_first({row["name"]: set(row["parents"]) for row in rows})

    def columns(self, table: str) -> list[str]:
        rows = self._connection().execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
            [table],
        )
        return [row["column_name"] for row in rows.fetchall()]

    def stream(self, table: str, columns: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        from psycopg.rows import tuple_row

        cursor = self._connection().cursor(row_factory=tuple_row)
        yield from cursor.stream(f"SELECT {', '.join(columns)} FROM {table}")

    def load(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        conn = self._connection()
        loaded = 0
        # COPY: one stream, not a round trip per row (a million events load in seconds).
        with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                loaded += 1
        if "id" in columns:  # the identity column goes on after the largest id loaded
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table} "
                "HAVING max(id) IS NOT NULL"
            )
        return loaded

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _params(params: Params) -> Params:
    """psycopg takes a sequence or a mapping, like sqlite3; a list is sent as a tuple."""
    return params if isinstance(params, dict) else tuple(params)
