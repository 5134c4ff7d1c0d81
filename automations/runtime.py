"""Build the running parts from a config: client, ledger, catalog, rules, engine.

Shared by ``run``, ``once``, ``plan`` and ``validate`` so they can never
disagree about how a config turns into rules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pydantic import SecretStr

from automations.catalog import Catalog
from automations.clock import ServerClock, ledger_clock
from automations.config import Config
from automations.engine import Engine
from automations.errors import APIError, ConfigError
from automations.incidentio import IncidentIOClient, TokenBucket
from automations.ledger import Event, Ledger
from automations.rules.base import AnyRule

log = logging.getLogger("automations.runtime")


def make_client(config: Config, api_key: SecretStr) -> IncidentIOClient:
    settings = config.incident_io
    return IncidentIOClient(
        base_url=settings.base_url,
        api_key=api_key,
        rate_limiter=TokenBucket(rate_per_minute=settings.requests_per_minute),
        timeout=settings.timeout_seconds,
        retry_attempts=settings.retry_attempts,
    )


def load_catalog(client: IncidentIOClient, ledger: Ledger | None) -> Catalog:
    """From the API, cached in the ledger; the cache is the fallback when the API is down."""
    try:
        catalog = Catalog.fetch(client)
    except APIError as exc:
        cached = cached_catalog(ledger)
        if cached is None:
            raise
        log.warning("catalog: API unavailable (%s); using the copy cached in the ledger", exc)
        return cached
    if ledger is not None:
        for kind, items in catalog.to_cache().items():
            ledger.save_catalog(kind, items)
    return catalog


def cached_catalog(ledger: Ledger | None) -> Catalog | None:
    if ledger is None:
        return None
    data = {}
    for kind in Catalog.KINDS:
        found = ledger.load_catalog(kind)
        if found is None:
            return None
        data[kind] = found[0]
    return Catalog.from_cache(data)


def build_rules(config: Config, catalog: Catalog, *, only: str | None = None) -> list[AnyRule]:
    """Instantiate enabled rules with names resolved; errors carry file and key path."""
    rules: list[AnyRule] = []
    names = [r.name for r in config.rules]
    if only is not None and only not in names:
        raise ConfigError(f"{config.path}: no rule named {only!r}; rules: {', '.join(names)}")
    for index, options in enumerate(config.rules):
        if only is not None and options.name != only:
            continue
        if not options.enabled and only is None:
            continue
        try:
            rules.append(config.rule_class(options)(options, catalog))
        except ConfigError as exc:
            raise ConfigError(f"{config.path}: rules[{index}].{exc}") from None
    return rules


@dataclass
class Runtime:
    """Everything a command needs, built once."""

    config: Config
    client: IncidentIOClient
    ledger: Ledger
    catalog: Catalog
    rules: list[AnyRule]
    engine: Engine

    def close(self) -> None:
        self.client.close()
        self.ledger.close()


def build_runtime(
    config: Config,
    api_key: SecretStr,
    *,
    lock: bool,
    clock: Callable[[], datetime] | None = None,
) -> Runtime:
    """Open the ledger (locked for daemons), reconcile-ready engine, rules resolved."""
    # Locked before SQLite opens the file: a refused process never touches the database.
    ledger = Ledger(config.store.path, lock=lock)
    try:
        # API time, like the runs' own times (the offset the last process remembered).
        if lock and (interrupted := ledger.close_interrupted_runs(now=ledger_clock(ledger)())):
            log.warning("start-up: %d runs were interrupted by a crash or kill", interrupted)
        client = make_client(config, api_key)
        catalog = load_catalog(client, ledger)
        rules = build_rules(config, catalog)
    except BaseException:
        ledger.close()
        raise
    engine = Engine(client, ledger, catalog, clock=clock or ServerClock(client, ledger))
    return Runtime(config, client, ledger, catalog, rules, engine)


def reconcile_at_startup(engine: Engine) -> list[tuple[Event, str]] | None:
    """Settle what an interrupted run left claimed; None when the API could not be reached.

    Unreachable is not fatal: the claims stay unconfirmed, and every cycle settles
    them first (``Engine.run_cycle``), so no edit is sent before they are settled.
    """
    try:
        settled = engine.reconcile()
    except APIError as exc:
        left = len(engine.ledger.unconfirmed())
        log.error(
            "start-up: %d unconfirmed claims not settled, the API is unreachable (%s); nothing "
            "is edited until the next cycle (or run) settles them",
            left,
            exc,
        )
        return None
    if settled:
        log.warning("start-up: settled %d unconfirmed events from an interrupted run", len(settled))
    return settled
