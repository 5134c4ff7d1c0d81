"""``test-rule``: evaluate one rule against saved incidents, with no API and no ledger writes."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from automations.catalog import Catalog, catalog_from_incidents
from automations.clock import Clock, host_now, ledger_clock
from automations.config import Config
from automations.errors import ConfigError
from automations.incidentio import Incident
from automations.ledger import Ledger
from automations.rules.base import PlannedAction
from automations.runtime import build_rules, cached_catalog

log = logging.getLogger("automations.offline")


def read_incidents(path: Path) -> list[Incident]:
    """A saved ``GET /v2/incidents`` page, a ``{"incident": ...}`` show, or a bare list."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable JSON file: {exc}") from None
    if isinstance(data, dict) and "incidents" in data:
        data = data["incidents"]
    elif isinstance(data, dict) and "incident" in data:
        data = [data["incident"]]
    if not isinstance(data, list):
        raise ConfigError(f"{path}: expected a list of incidents or a GET /v2/incidents response")
    try:
        return [Incident.model_validate(item) for item in data]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: incident {where}: {first['msg']}") from None


def parse_now(text: str | None, default: Clock) -> datetime:
    """``--now``, else the product's clock (API time as the daemon last saw it)."""
    if text is None:
        return default()
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--now: {text!r} is not an ISO 8601 time like 2026-11-23T08:00:00Z"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def evaluate_offline(
    config: Config, rule_name: str, path: Path, now_text: str | None
) -> list[PlannedAction]:
    incidents = read_incidents(path)
    now = parse_now(now_text, _offline_clock(config))
    catalog = _offline_catalog(config, incidents)
    (rule,) = build_rules(config, catalog, only=rule_name)
    if rule.needs_follow_ups:
        log.warning(
            "%s: follow-ups are not in saved incidents; treating each as having none", rule_name
        )
    # The server would have filtered; offline, apply the rule's status filter ourselves.
    matching = [i for i in incidents if _matches_categories(rule, i)]
    others = sorted(
        {k.split("[", 1)[0] for k, _ in rule.query().to_params()} - {"status_category", "mode"}
    )
    if others:
        log.warning(
            "%s: where filters on %s are applied by the API, not offline; save a page fetched "
            "with them (automations plan shows the live answer)",
            rule_name,
            ", ".join(others),
        )
    return rule.evaluate(matching, now, catalog, None)


def _offline_clock(config: Config) -> Clock:
    """The daemon's clock when it has run with this ledger, else the host's."""
    if not config.store.path.exists():
        return host_now
    with Ledger(config.store.path) as ledger:
        return ledger_clock(ledger)


def _offline_catalog(config: Config, incidents: list[Incident]) -> Catalog:
    """The catalog the daemon cached in the ledger; else what the saved incidents mention."""
    if config.store.path.exists():
        with Ledger(config.store.path) as ledger:
            cached = cached_catalog(ledger)
        if cached is not None:
            return cached
    log.warning(
        "no catalog cached in %s yet: names are resolved from the saved incidents only",
        config.store.path,
    )
    return catalog_from_incidents(incidents)


def _matches_categories(rule: Any, incident: Incident) -> bool:
    params = rule.query().to_params()
    wanted = {v for k, v in params if k == "status_category[one_of]"}
    return not wanted or incident.incident_status.category in wanted
