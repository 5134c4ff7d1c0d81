"""``since``: what an age counts from, shared by every rule that waits (escalate, notice).

"created" (the incident's creation); "live" (when it last entered a live status)
and "severity" (when its severity last changed), both read from its updates
(anchors.py); or the name of an incident timestamp ("Impact started").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from automations.anchors import Anchor, live_since, severity_since
from automations.catalog import Catalog
from automations.durations import human_moment, human_span
from automations.errors import Problems, UnknownName
from automations.incidentio import Incident, IncidentUpdate, StatusCategory
from automations.text import one_line

# Anchors read from the incident's updates rather than from the incident itself.
FROM_UPDATES = ("live", "severity")
SINCE_DESCRIPTION = (
    'What age counts from: "created"; "live" (since the incident last entered a live status); '
    '"severity" (since its severity last changed); or the name of an incident timestamp such '
    'as "Impact started".'
)


class Since:
    """One rule's ``since``, resolved against the catalog once, at start-up."""

    def __init__(self, since: str, catalog: Catalog, problems: Problems) -> None:
        self.option = since
        self.timestamp_id: str | None = None
        self.name = since
        if since in ("created", *FROM_UPDATES):
            return
        try:
            timestamp = catalog.timestamp(since)
            self.timestamp_id, self.name = timestamp.id, timestamp.name
        except UnknownName as exc:
            problems.add(
                UnknownName(
                    "incident timestamp (or 'created', 'live', 'severity')",
                    exc.value,
                    [*exc.valid, "created", *FROM_UPDATES],
                    "since",
                )
            )

    @property
    def from_updates(self) -> bool:
        """Whether the anchor is read from the incident's updates (one request each)."""
        return self.option in FROM_UPDATES

    def admits(self, incident: Incident) -> bool:
        """``live`` ages only live incidents: any other has no live anchor."""
        return self.option != "live" or incident.status_category == StatusCategory.LIVE

    def anchor(self, incident: Incident, updates: Sequence[IncidentUpdate]) -> Anchor | None:
        """When the age starts, or None when it cannot start (not live; timestamp unset)."""
        if self.option == "live":
            return live_since(incident, updates)
        if self.option == "severity":
            return severity_since(incident, updates)
        if self.timestamp_id is None:
            return Anchor(incident.created_at, from_creation=True)
        value = incident.timestamp_value(self.timestamp_id)
        return None if value is None else Anchor(value, from_creation=False)

    def describe(self, incident: Incident, anchor: Anchor, now: datetime) -> str:
        """'live for 2h 5m (since 09:12 UTC)', 'Major for 6h (since 24 Nov 03:10 UTC)'."""
        span, moment = human_span(now - anchor.at), human_moment(anchor.at, now)
        if self.timestamp_id is not None:
            return f"{span} since {one_line(self.name)} ({moment})"
        if self.option == "severity":
            state = one_line(incident.severity.name) if incident.severity else "without a severity"
        else:
            state = "live" if self.option == "live" else "open"
        origin = "since creation at " if anchor.from_creation else "since "
        return f"{state} for {span} ({origin}{moment})"
