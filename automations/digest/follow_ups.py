"""Follow-ups: what is still to do after recently closed incidents, and what got done. Pure.

"Recently closed" is an incident in the learning or closed category resolved
within ``span`` before now (7 days for a daily digest, 8 weeks for a weekly
one). Its outstanding follow-ups are listed oldest first, with who owns them
and how old they are; beyond ``limit`` rows, "and N more" links to
incident.io. Follow-ups of the same incidents completed in the digest's window
are counted.

The audience rules are the incidents': a follow-up whose incident this digest
may not show (private, test, outside its ``where``, or simply not among the
incidents read) is left out entirely, its title included.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from automations.digest.content import (
    RESOLVED_CATEGORIES,
    one_line,
    resolved_at,
    safe_link,
    visible,
)
from automations.digest.oncall import person_name
from automations.durations import human_span
from automations.incidentio import Incident
from automations.incidentio.models import FollowUp, FollowUpStatus

DEFAULT_SPAN = timedelta(days=7)
ROW_LIMIT = 10  # a fixed cap (the oldest): they take no rows from the incident sections, and
# at ~450 bytes a row in the inlined HTML, ten keep 200 incidents under the 100 KB budget
TITLE_LIMIT = 200


@dataclass(frozen=True)
class FollowUpRow:
    """One outstanding follow-up as the digest shows it."""

    id: str
    title: str
    reference: str  # its incident's
    incident_name: str
    link: str | None  # its incident on incident.io
    assignee: str  # a person's name, "team <name>", or "unassigned"
    created_at: datetime
    age: timedelta
    priority: str | None


@dataclass(frozen=True)
class FollowUps:
    """The follow-ups section; ``unavailable`` says why it could not be read."""

    rows: tuple[FollowUpRow, ...] = ()
    outstanding: int = 0  # every outstanding one, before the cap
    completed: int = 0  # completed in the digest's window
    span: timedelta = DEFAULT_SPAN
    more_url: str = "https://app.incident.io/follow-ups"
    unavailable: str | None = None

    @property
    def span_words(self) -> str:
        """'7 days', '8 weeks', '36h': how far back "recently closed" reaches."""
        days, rest = divmod(self.span, timedelta(days=1))
        if rest or not days:
            return human_span(self.span)
        if days % 7 == 0 and days >= 14:
            return f"{days // 7} weeks"
        return f"{days} day{'s' if days != 1 else ''}"

    @property
    def more(self) -> int:
        """Outstanding follow-ups not listed (past the cap)."""
        return self.outstanding - len(self.rows)


def follow_ups_url(incidents_url: str) -> str:
    """incident.io's follow-ups page, next to its incident list (which carries the org slug)."""
    base = incidents_url.rstrip("/")
    if base.endswith("/incidents"):
        return base.removesuffix("/incidents") + "/follow-ups"
    return "https://app.incident.io/follow-ups"


def recently_resolved(
    incidents: Iterable[Incident], now: datetime, span: timedelta
) -> dict[str, Incident]:
    """Learning and closed incidents resolved in the ``span`` before ``now``, by ID."""
    out = {}
    for incident in incidents:
        if incident.status_category not in RESOLVED_CATEGORIES:
            continue
        resolved = resolved_at(incident)
        if resolved is not None and now - span <= resolved <= now:
            out[incident.id] = incident
    return out


def assignee_of(follow_up: FollowUp) -> str:
    if follow_up.assignee is not None:
        return person_name(follow_up.assignee)
    if follow_up.assignee_team is not None:
        return "team " + one_line(follow_up.assignee_team.name or follow_up.assignee_team.id, 80)
    return "unassigned"


def follow_up_row(follow_up: FollowUp, incident: Incident, now: datetime) -> FollowUpRow:
    return FollowUpRow(
        id=follow_up.id,
        title=one_line(follow_up.title, TITLE_LIMIT) or "(no title)",
        reference=one_line(incident.reference, 40),
        incident_name=one_line(incident.name) or "(no name)",
        link=safe_link(incident.permalink),
        assignee=assignee_of(follow_up),
        created_at=follow_up.created_at,
        age=max(now - follow_up.created_at, timedelta(0)),
        priority=one_line(follow_up.priority.name, 40) if follow_up.priority else None,
    )


def build_follow_ups(
    *,
    follow_ups: Iterable[FollowUp],
    incidents: Iterable[Incident],
    now: datetime,
    window_start: datetime,
    window_end: datetime,
    span: timedelta = DEFAULT_SPAN,
    include_private: bool = False,
    include_test: bool = False,
    categories: Iterable[str] = (),
    limit: int = ROW_LIMIT,
    incidents_url: str = "https://app.incident.io/incidents",
) -> FollowUps:
    """The section from the follow-ups read and every incident the digest read."""
    seen = {
        i.id: i
        for i in visible(
            incidents,
            include_private=include_private,
            include_test=include_test,
            categories=tuple(categories),
        )
    }
    recent = recently_resolved(seen.values(), now, span)
    unique = {f.id: f for f in follow_ups}.values()
    outstanding = sorted(
        (f for f in unique if f.is_outstanding and f.incident_id in recent),
        key=lambda f: (f.created_at, f.id),
    )
    completed = sum(
        1
        for f in unique
        if f.status == FollowUpStatus.COMPLETED
        and f.incident_id in recent
        and f.completed_at is not None
        and window_start <= f.completed_at < window_end
    )
    rows = tuple(follow_up_row(f, recent[f.incident_id], now) for f in outstanding[: max(limit, 0)])
    return FollowUps(
        rows=rows,
        outstanding=len(outstanding),
        completed=completed,
        span=span,
        more_url=follow_ups_url(incidents_url),
    )
