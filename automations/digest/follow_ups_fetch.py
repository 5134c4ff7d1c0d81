"""The reads behind the follow-ups section: a few paged listings, never one per incident.

1. the recently resolved incidents: one ``GET /v2/incidents`` query (the digest's
   ``where``, status category learning or closed, ``updated_at[gte]`` the span's
   start); skipped when the digest already read every incident updated since then
   (with the trends section on, it reads further back) or when
   ``where.status_category`` leaves neither category in;
2. their follow-ups: one ``GET /v3/follow_ups`` listing per incident mode among
   them (``created_at[gte]`` the day the oldest was declared: a follow-up is never
   older than its incident), 250 a page. An incident declared long before the
   others (a months-long one resolved this week) is read on its own
   (``incident_id``), so it does not drag months of follow-ups into the listing.

Completed follow-ups are counted from the same listings: the section is about the
recently closed incidents.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from automations.digest.content import RESOLVED_CATEGORIES, visible
from automations.digest.follow_ups import (
    DEFAULT_SPAN,
    ROW_LIMIT,
    FollowUps,
    build_follow_ups,
    recently_resolved,
)
from automations.digest.oncall import api_failure
from automations.digest.oncall_fetch import guarded
from automations.digest.trends import PERIODS, trend_unit
from automations.errors import APIError
from automations.incidentio.follow_ups import TimeWindow, listing_mode

if TYPE_CHECKING:
    from automations.digest.config import DigestOptions
    from automations.incidentio import Incident, IncidentFilter, IncidentIOClient
    from automations.incidentio.models import FollowUp

# Declared this long before the span began: read on its own, unless there are many such.
OUTLIER_AGE = timedelta(days=14)
MAX_SINGLE_READS = 3


@dataclass(frozen=True)
class Listing:
    """One ``GET /v3/follow_ups`` listing (followed to its last page)."""

    incident_mode: str | None = None
    created_since: datetime | None = None
    incident_id: str | None = None


def plan_listings(recent: Iterable[Incident], span_start: datetime) -> list[Listing]:
    """The fewest listings that return every follow-up of ``recent``: one per mode from the
    oldest incident's day, and the few far older incidents one by one."""
    by_mode: dict[str | None, list[Incident]] = {}
    for incident in recent:
        by_mode.setdefault(listing_mode(incident.mode), []).append(incident)
    listings = []
    for mode, incidents in sorted(by_mode.items(), key=lambda kv: kv[0] or ""):
        floor = span_start - OUTLIER_AGE
        old = [i for i in incidents if i.created_at < floor]
        young = [i for i in incidents if i.created_at >= floor]
        if len(old) > MAX_SINGLE_READS:
            young, old = incidents, []
        if young:
            since = min(i.created_at for i in young)
            listings.append(Listing(incident_mode=mode, created_since=since))
        listings += [Listing(incident_mode=mode, incident_id=i.id) for i in old]
    return listings


def follow_up_span(options: DigestOptions, end: datetime) -> timedelta:
    """The trends' span: 7 days for a daily digest, 8 weeks for a weekly one."""
    unit = trend_unit(options, end)
    return PERIODS[unit] * (timedelta(weeks=1) if unit == "week" else timedelta(days=1))


def resolved_query(
    options: DigestOptions, base: IncidentFilter, since: datetime
) -> IncidentFilter | None:
    """Learning and closed incidents updated since ``since``, within the digest's ``where``."""
    wanted = options.where.status_category
    categories = [c for c in RESOLVED_CATEGORIES if not wanted or c in wanted]
    if not categories:
        return None
    return base.status_category(one_of=categories).updated_at(gte=since)


def read_follow_ups(
    client: IncidentIOClient,
    options: DigestOptions,
    base: IncidentFilter,
    incidents: Sequence[Incident],
    *,
    read_since: datetime,
    now: datetime,
    window_start: datetime,
    window_end: datetime,
    span: timedelta = DEFAULT_SPAN,
    incidents_url: str,
) -> FollowUps:
    """The section; ``incidents`` are those the digest already read (live ones, and all
    updated since ``read_since``). Raises APIError."""
    span_start = now - span
    # Incidents updated since the span began are already read (the trends section reads
    # further back): a resolution in the span is an update in it.
    query = None if read_since <= span_start else resolved_query(options, base, span_start)
    known = {i.id: i for i in incidents}
    if query is not None:
        for incident in client.iter_incidents(query):
            known.setdefault(incident.id, incident)
    shown = visible(
        known.values(),
        include_private=options.include_private,
        include_test=options.include_test,
        categories=options.where.status_category,
    )
    recent = recently_resolved(shown, now, span)
    found: list[FollowUp] = []
    for listing in plan_listings(recent.values(), span_start):
        created = TimeWindow(gte=listing.created_since.date()) if listing.created_since else None
        found += client.iter_follow_ups(
            incident_id=listing.incident_id,
            incident_mode=listing.incident_mode,
            created_at=created,
        )
    return build_follow_ups(
        follow_ups=found,
        incidents=shown,
        now=now,
        window_start=window_start,
        window_end=window_end,
        span=span,
        include_private=options.include_private,
        include_test=options.include_test,
        categories=options.where.status_category,
        limit=min(ROW_LIMIT, options.max_incidents),
        incidents_url=incidents_url,
    )


def follow_ups_section(
    client: IncidentIOClient,
    options: DigestOptions,
    base: IncidentFilter,
    incidents: Sequence[Incident],
    *,
    read_since: datetime,
    now: datetime,
    window_start: datetime,
    window_end: datetime,
    incidents_url: str,
    warned: set[tuple[str, str, int | None]],
    span: timedelta = DEFAULT_SPAN,
) -> FollowUps:
    """The follow-ups section of one digest, a line saying why when it cannot be read."""

    def failed(exc: APIError) -> FollowUps:
        return FollowUps(span=span, unavailable=api_failure(exc))

    return guarded(
        lambda: read_follow_ups(
            client,
            options,
            base,
            incidents,
            read_since=read_since,
            now=now,
            window_start=window_start,
            window_end=window_end,
            span=span,
            incidents_url=incidents_url,
        ),
        failed,
        digest=options.name,
        section="follow-ups",
        warned=warned,
    )
