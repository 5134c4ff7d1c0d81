"""The local matcher answers exactly what GET /v2/incidents answers, filter by filter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from automations.catalog import Catalog
from automations.errors import UndecidableFilter
from automations.incidentio import Incident, IncidentFilter, IncidentIOClient, TokenBucket
from automations.matching import IncidentMatcher, matches
from automations.where import Where
from tests.factories import CATALOG, incident
from tests.sandbox_server import SandboxControl

ALL_MODES = ["standard", "retrospective", "test", "tutorial"]
Org = tuple[IncidentIOClient, Catalog, list[Incident], datetime]

# Every kind of filter `where` can write, alone and combined.
WHERES: list[dict[str, Any]] = [
    {},
    {"status_category": ["live"]},
    {"status_category": ["triage", "paused"]},
    {"status_category": ["learning", "closed", "declined", "merged", "canceled"]},
    {"status": ["Investigating", "Monitoring"]},
    {"status": ["Documenting"], "status_category": ["learning"]},
    {"status": ["Triage"], "status_category": ["live"]},  # a contradiction: nothing
    {"severity": ["Minor"]},
    {"severity": ["Major", "Critical"]},
    {"severity_at_least": "Major"},
    {"severity_at_most": "Major"},
    {"severity_at_least": "Minor", "severity_at_most": "Major"},
    {"severity": ["Minor", "Critical"], "severity_at_least": "Major"},
    {"incident_type": ["Security"]},
    {"incident_type": ["Default", "Customer-facing"], "status_category": ["live"]},
    {"custom_field": {"Team": ["Payments"]}},
    {"custom_field": {"Team": ["Platform", "Data"], "Phase": ["Active"]}},
    {"role": {"Incident Lead": "unassigned"}},
    {"role": {"Incident Lead": "assigned"}, "status_category": ["live"]},
    {"role": {"Communications Lead": "assigned", "Incident Lead": "assigned"}},
    {"mode": ["test"]},
    {"mode": ["tutorial", "standard"], "status_category": ["live", "triage"]},
    {"mode": ALL_MODES, "severity_at_least": "Critical"},
    {
        "status_category": ["live"],
        "severity_at_most": "Major",
        "custom_field": {"Team": ["Payments"]},
        "role": {"Incident Lead": "assigned"},
    },
    {
        "status_category": ["learning", "closed"],
        "incident_type": ["Default"],
        "severity": ["Major"],
        "mode": ["retrospective", "standard"],
    },
]


@pytest.fixture(scope="module")
def org(sandbox_server: Any) -> Iterator[Org]:
    """A seeded organisation of 400 incidents: its catalog, every incident (all modes), its now."""
    control = SandboxControl(sandbox_server.base_url)
    control.reset(seed=7, incidents=400, rate_limit_per_minute=100_000)
    client = IncidentIOClient(
        base_url=control.base_url,
        api_key=control.api_key,
        rate_limiter=TokenBucket(rate_per_minute=600_000),
    )
    try:
        catalog = Catalog.fetch(client)
        everything = list(client.iter_incidents(IncidentFilter().mode(one_of=ALL_MODES)))
        yield client, catalog, everything, control.now()
    finally:
        client.close()
        control.close()


def _ids(incidents: list[Incident]) -> set[str]:
    return {i.id for i in incidents}


@pytest.mark.parametrize("where", WHERES, ids=lambda w: str(w) or "{}")
def test_where_matches_locally_what_the_api_returns(org: Org, where: dict[str, Any]) -> None:
    """For each `where`, the incidents matched locally are exactly those the sandbox returns."""
    client, catalog, everything, _ = org
    query = Where.model_validate(where).to_filter(catalog)

    local = _ids(IncidentMatcher(query, catalog).select(everything))
    served = _ids(list(client.iter_incidents(query)))

    assert local == served


EXTRA: list[Callable[[Catalog, datetime], IncidentFilter]] = [
    lambda c, now: IncidentFilter().status(not_in=[c.status("Closed").id, c.status("Triage").id]),
    lambda c, now: IncidentFilter().status_category(not_in=["closed"]),
    lambda c, now: IncidentFilter().severity(not_in=[c.severity("Minor").id]),
    lambda c, now: IncidentFilter().incident_type(not_in=[c.incident_type("Default").id]),
    lambda c, now: IncidentFilter().custom_field(
        c.custom_field("Team").id, not_in=[c.option(c.custom_field("Team"), "Payments").id]
    ),
    lambda c, now: IncidentFilter().custom_field(
        c.custom_field("Affected service").id, one_of="checkout"
    ),
    lambda c, now: IncidentFilter().created_at(gte=now - timedelta(days=10)),
    lambda c, now: IncidentFilter().created_at(lte=now - timedelta(days=3)),
    lambda c, now: IncidentFilter().updated_at(
        date_range=(now - timedelta(days=60), now - timedelta(days=2))
    ),
    lambda c, now: (
        IncidentFilter()
        .status_category(one_of=["live"])
        .severity(gte=c.severity("Critical").id)
        .filter_mode("any")
    ),
]


@pytest.mark.parametrize("build", EXTRA, ids=range(len(EXTRA)))
def test_other_operators_match_locally_what_the_api_returns(org: Org, build: Any) -> None:
    """not_in, dates, raw custom field values and filter_mode=any agree with the sandbox too."""
    client, catalog, everything, now = org
    query: IncidentFilter = build(catalog, now)

    local = _ids(IncidentMatcher(query, catalog).select(everything))
    served = _ids(list(client.iter_incidents(query)))

    assert local == served


def test_the_comparison_is_not_trivial(
    org: Org,
) -> None:
    """The organisation gives each filter something to tell apart: empty, partial and full sets."""
    _, catalog, everything, now = org
    sizes = [
        len(IncidentMatcher(Where.model_validate(w).to_filter(catalog), catalog).select(everything))
        for w in WHERES
    ]
    sizes += [len(IncidentMatcher(b(catalog, now), catalog).select(everything)) for b in EXTRA]
    partial = [n for n in sizes if 0 < n < len(everything)]
    assert len(partial) >= len(sizes) - 2  # {} (standard and retrospective) and the contradiction
    assert 0 in sizes


def test_a_severity_bound_the_catalog_does_not_know_is_refused() -> None:
    """A rank comparison against an unknown severity is an error, never a guess."""
    query = IncidentFilter().severity(gte="SEV-UNKNOWN")
    with pytest.raises(UndecidableFilter, match=r"severity\[gte\]: severity 'SEV-UNKNOWN'"):
        matches(query, incident(), CATALOG)


def test_admits_severity_reads_only_the_severity_conditions() -> None:
    """The ladder check asks whether a severity gets through one_of, gte and lte together."""
    query = Where(severity=("Minor", "Critical"), severity_at_most="Major").to_filter(CATALOG)
    matcher = IncidentMatcher(query, CATALOG)
    assert [matcher.admits_severity(s) for s in CATALOG.severities] == [True, False, False]
