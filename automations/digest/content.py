"""What a digest says, computed without I/O from incidents, the catalog and ledger events.

Pure, like rule evaluation: ``now`` and the window are passed in, so a digest
can be rebuilt and tested exactly. Everything the templates show is decided
here: which incidents may be seen (private and test ones only when asked),
how they are grouped and ordered, the figures, and how text is made safe to
put on one line (control characters folded, very long names cut).

``build_digest`` keeps every row; ``limit_rows`` makes the view that fits in
one mail, with "and N more" counts, so the renderer can shrink it if needed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from automations.catalog import Catalog, rank_order
from automations.digest.config import SECTIONS
from automations.digest.trends import (
    Cadence,
    Trends,
    TrendWindow,
    build_trends,
    median_duration,
    period_label,
    week_label,
)
from automations.incidentio import Incident
from automations.text import one_line as text_one_line

if TYPE_CHECKING:  # the ledger (sqlite-utils) stays out of `validate --offline`'s imports
    from automations.digest.changes import ActionRow, ChangesMore
    from automations.digest.follow_ups import FollowUps
    from automations.digest.oncall import OnCall
    from automations.ledger import Event

LIVE = "live"
RESOLVED_CATEGORIES = ("learning", "closed")
HIDDEN_MODES = ("test", "tutorial")
NAME_LIMIT = 200
# Incident timestamps that say when an incident was resolved, in order of preference.
RESOLVED_TIMESTAMPS = ("Resolved at", "Closed at")
# Sections whose data is fetched only when shown: None in DigestData means "not built".
_OPTIONAL_SECTIONS = ("oncall", "follow_ups", "trends")


def one_line(text: str | None, limit: int = NAME_LIMIT) -> str:
    """automations.text.one_line with the digest's longer default: incident names are free
    text from people and alerts, and must not break a subject header, a table row or a
    line of the plain-text part."""
    return text_one_line(text, limit)


def safe_link(url: str | None) -> str | None:
    """Only http(s) links reach an href: a ``javascript:`` permalink would survive escaping."""
    if url and re.match(r"^https?://[^\s\"'<>]+$", url):
        return url
    return None


@dataclass(frozen=True)
class IncidentRow:
    """One incident as a digest shows it."""

    id: str
    reference: str
    name: str
    status: str
    category: str
    severity: str
    severity_rank: int | None
    tone: str  # critical | major | minor | none: the badge colour
    lead: str | None
    created_at: datetime
    resolved_at: datetime | None
    age: timedelta  # created -> now
    duration: timedelta | None  # created -> resolved
    link: str | None
    private: bool
    mode: str


@dataclass(frozen=True)
class SeverityGroup:
    """Live incidents of one severity, oldest first."""

    severity: str
    tone: str
    rows: tuple[IncidentRow, ...]
    total: int  # before limiting


@dataclass(frozen=True)
class Figures:
    """Counts and simple statistics over every visible incident (never limited)."""

    live: int
    opened: int
    resolved: int
    actions: int  # every automated change shown, outside the digest's filter included
    live_by_severity: tuple[tuple[str, str, int], ...]  # (severity, tone, count)
    live_without_lead: int
    median_time_to_resolve: timedelta | None
    longest_live: timedelta | None
    actions_outside: int = 0  # of ``actions``, those on incidents outside the filter


@dataclass(frozen=True)
class DigestData:
    """Everything a template may use. Rows are already filtered, ordered and made safe."""

    name: str
    timezone: str
    generated_at: datetime
    window_start: datetime
    window_end: datetime
    sections: tuple[str, ...]
    include_private: bool
    include_test: bool
    live: tuple[SeverityGroup, ...]
    opened: tuple[IncidentRow, ...]
    resolved: tuple[IncidentRow, ...]
    actions: tuple[ActionRow, ...]
    figures: Figures
    incidents_url: str
    more: Mapping[str, int] = field(default_factory=dict)  # section -> rows left out
    oncall: OnCall | None = None  # who is on call (digest/oncall.py)
    follow_ups: FollowUps | None = None  # follow-ups of recently closed incidents
    trends: Trends | None = None  # digest/trends.py
    cadence: Cadence = "daily"  # from the cron: names the digest in the default subject
    changes_more: ChangesMore | None = None  # where "and N more" changes are listed

    @property
    def shown_sections(self) -> tuple[str, ...]:
        """The configured sections in the order of SECTIONS, leaving out optional ones not built."""
        return tuple(
            name
            for name in SECTIONS
            if name in self.sections
            and (name not in _OPTIONAL_SECTIONS or getattr(self, name) is not None)
        )

    @property
    def period_label(self) -> str:
        """What the digest covers, for subjects: 'Tue 1 Dec' (the day it is for), or for a
        weekly digest the seven days before the day it is sent ('23-29 Nov', en dash)."""
        zone = ZoneInfo(self.timezone)
        if self.cadence == "weekly":
            return week_label(self.window_end.astimezone(zone).date() - timedelta(days=7))
        return period_label("day", self.window_end, zone)

    @property
    def live_rows(self) -> tuple[IncidentRow, ...]:
        return tuple(row for group in self.live for row in group.rows)

    @property
    def worst(self) -> IncidentRow | None:
        """The most severe, longest-running live incident (for subjects)."""
        rows = self.live_rows
        return rows[0] if rows else None

    @property
    def shown_rows(self) -> int:
        return len(self.live_rows) + len(self.opened) + len(self.resolved) + len(self.actions)


# --- visibility ------------------------------------------------------------------------


def visible(
    incidents: Iterable[Incident],
    *,
    include_private: bool,
    include_test: bool,
    categories: Sequence[str] = (),
) -> list[Incident]:
    """Drop what this audience must not see; the API filters too, this is the guarantee."""
    out: dict[str, Incident] = {}
    for incident in incidents:
        if incident.is_private and not include_private:
            continue
        if incident.mode in HIDDEN_MODES and not include_test:
            continue
        if categories and incident.status_category not in categories:
            continue
        out.setdefault(incident.id, incident)
    return list(out.values())


# --- rows ------------------------------------------------------------------------------


def resolved_at(incident: Incident) -> datetime | None:
    """When it was resolved: the Resolved at (or Closed at) timestamp, else its last update."""
    if incident.status_category not in RESOLVED_CATEGORIES:
        return None
    for name in RESOLVED_TIMESTAMPS:
        value = incident.timestamp_value(name)
        if value is not None:
            return value
    return incident.updated_at


def lead_of(incident: Incident) -> str | None:
    """The incident lead's name: the role of type lead, else one named like it."""
    for item in incident.incident_role_assignments:
        if item.role.role_type == "lead" and item.assignee is not None:
            return one_line(item.assignee.name or item.assignee.email or item.assignee.id, 80)
    user = incident.role_assignee("lead") or incident.role_assignee("Incident Lead")
    if user is None:
        return None
    return one_line(user.name or user.email or user.id, 80)


def severity_tones(catalog: Catalog) -> dict[str, str]:
    """Badge colour by severity ID: the most severe is critical, the next major, others minor."""
    ranked = sorted(catalog.severities, key=rank_order, reverse=True)
    tones = ("critical", "major")
    return {s.id: tones[i] if i < len(tones) else "minor" for i, s in enumerate(ranked)}


def make_row(incident: Incident, now: datetime, tones: Mapping[str, str]) -> IncidentRow:
    resolved = resolved_at(incident)
    severity = incident.severity
    return IncidentRow(
        id=incident.id,
        reference=one_line(incident.reference, 40),
        name=one_line(incident.name) or "(no name)",
        status=one_line(incident.incident_status.name, 60),
        category=incident.status_category,
        severity=one_line(severity.name, 40) if severity else "No severity",
        severity_rank=severity.rank if severity else None,
        tone=tones.get(severity.id, "minor") if severity else "none",
        lead=lead_of(incident),
        created_at=incident.created_at,
        resolved_at=resolved,
        age=max(now - incident.created_at, timedelta(0)),
        duration=max(resolved - incident.created_at, timedelta(0)) if resolved else None,
        link=safe_link(incident.permalink),
        private=incident.is_private,
        mode=incident.mode,
    )


def _severity_order(row: IncidentRow) -> tuple[int, int, datetime]:
    # Most severe first, no severity last; within a severity the longest-running first.
    has = 0 if row.severity_rank is not None else 1
    return (has, -(row.severity_rank or 0), row.created_at)


def group_live(rows: Sequence[IncidentRow]) -> tuple[SeverityGroup, ...]:
    groups: dict[str, list[IncidentRow]] = {}
    for row in sorted(rows, key=_severity_order):
        groups.setdefault(row.severity, []).append(row)
    return tuple(
        SeverityGroup(severity=name, tone=items[0].tone, rows=tuple(items), total=len(items))
        for name, items in groups.items()
    )


# --- the digest --------------------------------------------------------------------------


def incidents_list_url(rows: Iterable[IncidentRow]) -> str:
    """The incident list on incident.io, derived from a permalink (it carries the org slug)."""
    for row in rows:
        if row.link and re.search(r"/incidents/[^/]+$", row.link):
            return row.link.rsplit("/", 1)[0]
    return "https://app.incident.io/incidents"


def build_digest(
    *,
    name: str,
    timezone: str,
    incidents: Iterable[Incident],
    catalog: Catalog,
    events: Iterable[Event],
    now: datetime,
    window_start: datetime,
    window_end: datetime,
    sections: Sequence[str],
    include_private: bool = False,
    include_test: bool = False,
    categories: Sequence[str] = (),
    trend: TrendWindow | None = None,
    cadence: Cadence = "daily",
    changes_url: str | None = None,
) -> DigestData:
    """Every row of the digest, nothing left out yet (see ``limit_rows``); the trends
    section only with a ``trend`` window.

    ``changes_url`` is the daemon's page of every change in the window (digest/changes.py).
    """
    # Imported here: changes.py builds on this module's helpers (one_line, safe_link).
    from automations.digest.changes import ChangesMore, action_rows, history_command

    incidents = list(incidents)
    shown = visible(
        incidents,
        include_private=include_private,
        include_test=include_test,
        categories=categories,
    )
    tones = severity_tones(catalog)
    rows = [make_row(incident, now, tones) for incident in shown]
    live = [r for r in rows if r.category == LIVE]
    opened = sorted(
        (r for r in rows if window_start <= r.created_at < window_end),
        key=lambda r: r.created_at,
        reverse=True,
    )
    resolved = sorted(
        (
            r
            for r in rows
            if r.resolved_at is not None and window_start <= r.resolved_at < window_end
        ),
        key=lambda r: (r.resolved_at, r.created_at),
        reverse=True,
    )
    incidents_url = incidents_list_url(rows)
    actions = action_rows(
        events,
        {r.id: r for r in rows},
        catalog,
        window_start,
        window_end,
        fetched={i.id: i for i in incidents},
        include_private=include_private,
        include_test=include_test,
        incidents_url=incidents_url,
    )
    groups = group_live(live)
    durations = [r.duration for r in resolved if r.duration is not None]
    figures = Figures(
        live=len(live),
        opened=len(opened),
        resolved=len(resolved),
        actions=len(actions),
        live_by_severity=tuple((g.severity, g.tone, g.total) for g in groups),
        live_without_lead=sum(1 for r in live if r.lead is None),
        median_time_to_resolve=median_duration(durations),
        longest_live=max((r.age for r in live), default=None),
        actions_outside=sum(1 for a in actions if a.outside),
    )
    return DigestData(
        name=name,
        timezone=timezone,
        generated_at=now,
        window_start=window_start,
        window_end=window_end,
        sections=tuple(sections),
        include_private=include_private,
        include_test=include_test,
        live=groups,
        opened=tuple(opened),
        resolved=tuple(resolved),
        actions=actions,
        figures=figures,
        incidents_url=incidents_url,
        trends=None if trend is None else build_trends(rows, trend),
        cadence=cadence,
        changes_more=ChangesMore(changes_url, history_command(window_start, now)),
    )


def fair_shares(sizes: Sequence[int], budget: int) -> list[int]:
    """Split ``budget`` rows: small sections in full, the big ones share what is left evenly."""
    shares = [0] * len(sizes)
    remaining = max(budget, 0)
    # Smallest first; among equals the later section goes first, so an earlier one gets the
    # remainder of the division (live before opened before resolved).
    order = sorted(range(len(sizes)), key=lambda i: (sizes[i], -i))
    for position, index in enumerate(order):
        fair = remaining // (len(order) - position)
        shares[index] = min(sizes[index], fair)
        remaining -= shares[index]
    return shares


def limit_rows(data: DigestData, max_rows: int) -> DigestData:
    """The view that fits: at most ``max_rows`` rows over the shown sections, the rest counted.

    Live incidents are cut from the least severe end, the others from the oldest.
    """
    names = [s for s in ("live", "opened", "resolved", "automations") if s in data.sections]
    full: dict[str, Sequence[Any]] = {
        "live": data.live_rows,
        "opened": data.opened,
        "resolved": data.resolved,
        "automations": data.actions,
    }
    shares = dict(zip(names, fair_shares([len(full[n]) for n in names], max_rows), strict=True))
    more = {name: len(full[name]) - shares[name] for name in names}
    kept_live = {row.id for row in data.live_rows[: shares.get("live", 0)]}
    groups = []
    for group in data.live:
        rows = tuple(row for row in group.rows if row.id in kept_live)
        if rows:
            groups.append(replace(group, rows=rows))
    return replace(
        data,
        live=tuple(groups),
        opened=data.opened[: shares.get("opened", 0)],
        resolved=data.resolved[: shares.get("resolved", 0)],
        actions=data.actions[: shares.get("automations", 0)],
        more={name: count for name, count in more.items() if count > 0},
    )
