"""When an incident's clock started: when it last entered a live status, or last changed severity.

Both are read from the incident's updates (``GET /v2/incident_updates``), which
record every status and severity change; pure functions, so rules stay pure.

The API does not say what status or severity an incident was created with,
only what each later update set. So:

- With no update that moved it into live (or changed its severity), the
  anchor is the incident's creation.
- When its first update is already live, it was either declared live or
  accepted out of triage by that update; the "Accepted at" timestamp tells
  which (incident.io sets it when an incident leaves triage, or at creation
  when declared live). Without one, creation.
- The first update that carries a severity counts as a change (the API sends
  ``new_severity`` only when it changed); a repeat of the same severity does not.
- When the incident's current status or severity is not the one its last
  update recorded, it changed without an update; the anchor is then its last
  change (``updated_at``), the latest moment that change can have happened.

An anchor is never earlier than the incident's creation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from automations.incidentio import Incident, IncidentUpdate, StatusCategory

ACCEPTED_AT = "Accepted at"


@dataclass(frozen=True)
class Anchor:
    """The moment an incident's current state began, and whether creation stands in for it."""

    at: datetime
    from_creation: bool


def live_since(incident: Incident, updates: Sequence[IncidentUpdate]) -> Anchor | None:
    """When the incident last entered a live-category status; None if it is not live now."""
    if incident.status_category != StatusCategory.LIVE:
        return None
    ordered = _oldest_first(updates)
    if not ordered:
        return _creation(incident)
    if not _is_live(ordered[-1]):
        return _last_change(incident)
    start = len(ordered) - 1
    while start > 0 and _is_live(ordered[start - 1]):
        start -= 1
    if start > 0:  # moved into live from another status by this update
        return _at(incident, ordered[start].created_at)
    accepted = incident.timestamp_value(ACCEPTED_AT)
    if accepted is not None and accepted > incident.created_at:
        return _at(incident, min(accepted, ordered[0].created_at))
    return _creation(incident)


def severity_since(incident: Incident, updates: Sequence[IncidentUpdate]) -> Anchor:
    """When the incident's severity last changed (creation if no update changed it)."""
    recorded = [u for u in _oldest_first(updates) if u.new_severity is not None]
    if not recorded:
        return _creation(incident)
    current = incident.severity.id if incident.severity is not None else None
    if _severity_id(recorded[-1]) != current:
        return _last_change(incident)
    start = len(recorded) - 1
    while start > 0 and _severity_id(recorded[start - 1]) == current:
        start -= 1
    return _at(incident, recorded[start].created_at)


def _oldest_first(updates: Sequence[IncidentUpdate]) -> list[IncidentUpdate]:
    """The API lists newest first; sorting is stable, so equal times keep the order given."""
    return sorted(updates, key=lambda u: u.created_at)


def _is_live(update: IncidentUpdate) -> bool:
    return update.new_incident_status.category == StatusCategory.LIVE


def _severity_id(update: IncidentUpdate) -> str | None:
    return update.new_severity.id if update.new_severity is not None else None


def _creation(incident: Incident) -> Anchor:
    return Anchor(incident.created_at, from_creation=True)


def _last_change(incident: Incident) -> Anchor:
    return _at(incident, incident.updated_at)


def _at(incident: Incident, moment: datetime) -> Anchor:
    if moment <= incident.created_at:
        return _creation(incident)
    return Anchor(moment, from_creation=False)
