"""The API reads behind one digest: two filtered queries, however long the window.

1. live incidents (``status_category=live``), whatever their age;
2. incidents updated since the window began (``updated_at[gte]``, whole days
   in UTC): anything opened or resolved in the window was updated in it. With
   the trends section, since the trends' comparison window began instead (the
   same one paged query, however many periods the chart has).

The digest's ``where`` applies to both; mode follows ``include_test``. Its
local part (``team_ids``: the API has no team filter) is applied to what came
back, so a per-team digest costs the same requests as one for every team. The
results are supersets (the API compares dates, not instants): content.py
narrows them to the exact window.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from automations.catalog import Catalog
from automations.digest.config import DigestOptions
from automations.digest.trends import TrendWindow
from automations.incidentio import Incident, IncidentFilter, IncidentIOClient

ALL_MODES = ("standard", "retrospective", "test", "tutorial")


def digest_filter(options: DigestOptions, catalog: Catalog, path: str) -> IncidentFilter:
    """The digest's ``where`` with names resolved; ConfigError names ``path``."""
    query = options.where.to_filter(catalog, path=f"{path}.where")
    if options.include_test and not options.where.mode:
        query = query.mode(one_of=list(ALL_MODES))
    return query


def fetch_since(window_start: datetime, trend: TrendWindow | None) -> datetime:
    """How far back the updated-since query reaches: the window, or the trends' span."""
    return window_start if trend is None else min(window_start, trend.since)


def queries(options: DigestOptions, base: IncidentFilter, since: datetime) -> list[IncidentFilter]:
    """The queries to run; live is skipped when ``where.status_category`` excludes it."""
    wanted: Sequence[str] = options.where.status_category
    out = []
    if not wanted or "live" in wanted:
        out.append(base.status_category(one_of=["live"]))
    out.append(base.updated_at(gte=since))
    return out


def fetch_incidents(
    client: IncidentIOClient, options: DigestOptions, base: IncidentFilter, since: datetime
) -> list[Incident]:
    """Every incident the digest may mention, each once, its where's local part applied."""
    local = options.where.local_filter()
    found: dict[str, Incident] = {}
    for query in queries(options, base, since):
        for incident in local.select(client.iter_incidents(query)):
            found.setdefault(incident.id, incident)
    return list(found.values())
