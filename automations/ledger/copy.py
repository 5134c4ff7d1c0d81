"""``automations ledger copy``: every row of one ledger into another, empty one, all or nothing.

It is how a team moves from SQLite to PostgreSQL without acting twice: every
table is copied (events with their states and attempts, releases, runs, the
outbox, notifications, the catalog, meta with the pause flag and the clock
offset, quarantine, retention checks), ids included, so each claimed key stays
taken. The copy runs in one transaction of the target, under the write lock
of both ledgers (nothing writes to the source while it is read); each table's
row count is compared with the source's before the commit, and any difference
rolls the whole copy back.
"""

from __future__ import annotations

from automations.errors import LedgerError, LedgerNotEmpty
from automations.ledger import Ledger


def copy_ledger(source: Ledger, target: Ledger) -> dict[str, int]:
    """Copy every table of ``source`` into the empty ``target``; rows per table, in copy order.

    LedgerNotEmpty if the target has any row; LedgerError (and nothing written) if the two
    ledgers' schemas differ, a row is refused, or a count does not match.
    """
    with (
        source.database.guard(f"reading ledger {source.name}"),
        target.database.guard(f"copying into ledger {target.name}"),
    ):
        tables = _same_schema(source, target)
        counts: dict[str, int] = {}
        with source.database.transaction(), target.database.transaction():
            _check_empty(target, tables)
            for table in tables:
                columns = source.database.backend.columns(table)
                expected = source.database.backend.count(table)
                rows = source.database.backend.stream(table, columns)
                loaded = target.database.backend.load(table, columns, rows)
                found = target.database.backend.count(table)
                if not loaded == found == expected:
                    raise LedgerError(
                        f"copying {table} into ledger {target.name}: {expected} rows in the "
                        f"source, {loaded} written, {found} found; nothing was copied"
                    )
                counts[table] = found
    return counts


def _same_schema(source: Ledger, target: Ledger) -> list[str]:
    """The tables to copy, parents first; LedgerError when the two schemas differ."""
    versions = source.applied_migrations(), target.applied_migrations()
    if versions[0] != versions[1]:
        newer = source if len(versions[0]) < len(versions[1]) else target
        raise LedgerError(
            f"ledgers {source.name} and {target.name} are at different migrations "
            f"({versions[0][-1:]} and {versions[1][-1:]}); ledger {newer.name} was opened by "
            "a newer version: copy with the newest on both"
        )
    tables = source.database.backend.tables()
    if set(tables) != set(target.database.backend.tables()):
        raise LedgerError(f"ledgers {source.name} and {target.name} have different tables")
    for table in tables:
        if source.database.backend.columns(table) != target.database.backend.columns(table):
            raise LedgerError(f"table {table} has different columns in {target.name}")
    return tables


def _check_empty(target: Ledger, tables: list[str]) -> None:
    held = {table: n for table in tables if (n := target.database.backend.count(table))}
    if held:
        rows = ", ".join(f"{table} {n}" for table, n in held.items())
        raise LedgerNotEmpty(
            f"ledger {target.name} is not empty ({rows}); copy only into a new, empty "
            "database (its tables are created on the first open), never over another ledger"
        )
