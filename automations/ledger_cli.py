"""``automations ledger copy``: move a SQLite ledger to PostgreSQL without acting twice.

The source is the config's ``[store] path`` (or ``--from``); the target is
``--to`` or ``AUTOMATIONS_STORE_URL`` (``_FILE``), an empty PostgreSQL database.
The source is locked as a daemon locks it, so the copy refuses to run beside
one (stop it first) and no daemon can start on the file during the copy.

Exit codes: 0 copied and verified; 1 the copy failed and was rolled back (the
target is as empty as before); 73 the target is not empty; 75 a daemon holds
the SQLite ledger; 78 a configuration problem (no target, not a PostgreSQL URL,
no SQLite ledger at the path).
"""

from __future__ import annotations

from pathlib import Path

import click

from automations.cli_options import Group, config_option


@click.group(cls=Group)
def ledger() -> None:
    """The ledger itself: copy it to PostgreSQL."""


@ledger.command(name="copy")
@config_option
@click.option(
    "--to",
    "to",
    default=None,
    metavar="URL",
    help="The empty PostgreSQL ledger, postgresql://user@host/db (default: "
    "AUTOMATIONS_STORE_URL). Give a password in PGPASSWORD or the variable, not here.",
)
@click.option(
    "--from",
    "source",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The SQLite ledger file (default: the config's [store] path).",
)
def copy(config_path: Path, to: str | None, source: Path | None) -> None:
    """Copy the SQLite ledger into an empty PostgreSQL one, in one transaction, and verify
    each table's row count. Stop the daemon first; point it at the URL afterwards."""
    from automations.config import load_config
    from automations.errors import ConfigError
    from automations.ledger import Ledger
    from automations.ledger.copy import copy_ledger
    from automations.store import environment_url, store_label
    from automations.store_url import is_postgres_url

    config = load_config(config_path)
    if source is None:
        if config.store.url is not None:
            raise ConfigError(
                f"{config_path}: [store] url names the ledger already; --from names the SQLite "
                "file to copy"
            )
        source = config.store.path
    target = to or environment_url()
    if target is None:
        raise ConfigError("ledger copy: no target: pass --to postgresql://... or set "
                          "AUTOMATIONS_STORE_URL")  # fmt: skip
    if not is_postgres_url(target):
        raise ConfigError(f"--to: {store_label(target)!r} is not a URL starting with postgresql://")
    if not source.is_file():
        raise ConfigError(f"{source}: no SQLite ledger there (nothing to copy)")
    label = store_label(target)
    # lock: as a daemon locks it (LedgerLocked, 75, if one runs); none starts during the copy.
    with Ledger(source, lock=True) as lite, Ledger(target) as postgres:
        counts = copy_ledger(lite, postgres)
    click.echo(f"copied {source} to {label} (one transaction; row counts verified):")
    width = max(len(table) for table in counts)
    for table, rows in counts.items():
        click.echo(f"  {table:<{width}}  {rows:>9,}")
    click.echo(
        f"total {sum(counts.values()):,} rows. Next: point the daemons at it ([store] url, or "
        "AUTOMATIONS_STORE_URL) and keep the SQLite file as a backup; do not start a daemon on it"
    )
