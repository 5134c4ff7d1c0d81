"""Where the ledger lives, from the config and the environment; the one place that opens it.

``[store] path`` names a SQLite file (the default, ``automations.db`` beside
the config). A PostgreSQL ledger is ``[store] url`` (without a password), or
``AUTOMATIONS_STORE_URL`` / ``AUTOMATIONS_STORE_URL_FILE`` (a password may be
in those). Exactly one store: a URL from the environment beside a ``path`` or
``url`` written in the file is a ConfigError, so nobody wonders which one a
daemon uses. Every command opens its ledger through ``open_ledger``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from automations.config import Config, StoreSettings
from automations.env_secrets import env_secret
from automations.errors import ConfigError
from automations.store_url import is_postgres_url, redact

if TYPE_CHECKING:
    from automations.ledger import Ledger

URL_VARIABLE = "AUTOMATIONS_STORE_URL"


def environment_url(environ: Mapping[str, str] | None = None) -> str | None:
    """``AUTOMATIONS_STORE_URL``, or the content of the file ``AUTOMATIONS_STORE_URL_FILE``."""
    secret = env_secret(URL_VARIABLE, environ)
    if secret is None:
        return None
    url = secret.get_secret_value()
    if not is_postgres_url(url):
        raise ConfigError(
            f"{URL_VARIABLE}: must be a URL starting with postgresql:// (e.g. "
            "postgresql://automations@db.internal/automations); a SQLite ledger is [store] path"
        )
    return url


def ledger_location(
    store: StoreSettings, environ: Mapping[str, str] | None = None, *, source: Path | None = None
) -> str | Path:
    """The PostgreSQL URL (with its password, if any: never show it, see ``store_label``)
    or the SQLite file. ``source`` names the config file in errors."""
    from_env = environment_url(environ)
    if from_env is not None and (store.url is not None or store.path_given):
        where = f"{source}: " if source else ""
        written = "url" if store.url is not None else "path"
        raise ConfigError(
            f"{where}store.{written}: is set, and {URL_VARIABLE} names a PostgreSQL ledger too; "
            f"use one: remove [store] {written} from the file, or unset {URL_VARIABLE}"
        )
    return from_env or store.url or store.path


def config_location(config: Config, environ: Mapping[str, str] | None = None) -> str | Path:
    """``ledger_location`` of a loaded config."""
    return ledger_location(config.store, environ, source=config.path)


def store_label(location: str | Path) -> str:
    """The ledger as a person is shown it: the file, or the URL without its password."""
    return redact(location) if isinstance(location, str) else str(location)


def ledger_exists(config: Config) -> bool:
    """Whether there is a ledger to read: the SQLite file exists. A PostgreSQL database always
    counts (opening an empty one gives an empty ledger)."""
    location = config_location(config)
    return isinstance(location, str) or location.exists()


def open_ledger(config: Config, *, lock: bool = False) -> Ledger:
    """The config's ledger, opened (created and migrated when needed).

    ``lock``: SQLite's one-daemon lock (LedgerLocked if another process holds it);
    nothing on PostgreSQL, where the leader lock decides which replica acts.
    """
    from automations.ledger import Ledger

    return Ledger(config_location(config), lock=lock)
