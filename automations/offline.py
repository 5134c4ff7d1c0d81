"""``test-rule``: evaluate one rule against saved incidents, with no API and no ledger writes.

It answers what ``plan`` would for the same incidents at the same time: the
rule's server-side query is applied locally by the same matcher the API's
semantics are tested against (matching.py), and where the answer needs data a
saved page does not hold (incident updates, follow-ups, a severity the catalog
does not know), it refuses with the reason instead of guessing.
"""

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
from automations.errors import ConfigError, RefusedFile, UndecidableFilter
from automations.files import read_regular_file
from automations.incidentio import Incident
from automations.matching import IncidentMatcher
from automations.rules.base import AnyRule, EvaluationContext, PlannedAction
from automations.runtime import build_rules, cached_catalog
from automations.store import config_location, ledger_exists, open_ledger, store_label

log = logging.getLogger(__name__)


def read_incidents(path: Path) -> list[Incident]:
    """A saved ``GET /v2/incidents`` page, a ``{"incident": ...}`` show, or a bare list."""
    try:
        raw = read_regular_file(path)
    except RefusedFile as exc:
        raise ConfigError(f"{path}: {exc}; --incidents takes a JSON file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data: Any = json.loads(raw.decode("utf-8-sig"))
    except ValueError as exc:  # not UTF-8, or not JSON
        raise ConfigError(f"{path}: not a readable JSON file: {exc}") from None
    except RecursionError:  # the decoder recurses once per level
        raise ConfigError(
            f"{path}: not a readable JSON file: nested too deeply (hundreds of levels of "
            "arrays or objects; an incident has a few)"
        ) from None
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
        # In UTC, as every time the rules compare: 9999-12-31T23:59-14:00 is past year 9999.
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise ConfigError(
            f"--now: {text!r} is not an ISO 8601 time like 2026-11-23T08:00:00Z "
            "(from year 1 to 9999 in UTC)"
        ) from None


def evaluate_offline(
    config: Config, rule_name: str, path: Path, now_text: str | None
) -> list[PlannedAction]:
    incidents = read_incidents(path)
    now = parse_now(now_text, _offline_clock(config))
    catalog = _offline_catalog(config, incidents)
    (rule,) = build_rules(config, catalog, only=rule_name)
    try:
        matcher = IncidentMatcher(rule.query(), catalog, rule.local_filter())
    except UndecidableFilter as exc:
        raise _cannot(rule, str(exc)) from None
    matching = matcher.select(incidents)
    if rule.needs_follow_ups and matching:
        raise _cannot(rule, "it reads follow-ups, which a saved page does not hold")
    needing = [incident.reference for incident in matching if rule.needs_updates(incident, now)]
    if needing:
        more = f" and {len(needing) - 3} more" if len(needing) > 3 else ""
        raise _cannot(
            rule,
            f"judging {', '.join(needing[:3])}{more} needs their incident updates (when they "
            "changed status or severity), which a saved page does not hold",
        )
    return rule.evaluate(matching, EvaluationContext(now=now, catalog=catalog))


def _cannot(rule: AnyRule, why: str) -> ConfigError:
    """Refuse rather than guess: the answer could differ from what `plan` says."""
    return ConfigError(
        f"{rule.name}: cannot be tested offline: {why}; "
        f"`automations plan --rule {rule.name}` asks the API instead"
    )


def _offline_clock(config: Config) -> Clock:
    """The daemon's clock when it has run with this ledger, else the host's."""
    if not ledger_exists(config):
        return host_now
    with open_ledger(config) as ledger:
        return ledger_clock(ledger.meta)


def _offline_catalog(config: Config, incidents: list[Incident]) -> Catalog:
    """The catalog the daemon cached in the ledger; else what the saved incidents mention."""
    if ledger_exists(config):
        with open_ledger(config) as ledger:
            cached = cached_catalog(ledger)
        if cached is not None:
            return cached
    log.warning(
        "no catalog cached in %s yet: names are resolved from the saved incidents only",
        store_label(config_location(config)),
    )
    return catalog_from_incidents(incidents)
