"""On-call records (schedules, escalation paths, escalations) and their API shapes.

Section 0 of docs/incident-io-api.md lists what the live API always sends; the
renderers send exactly that plus the optional keys that have a value, never
``null``. Everything time-dependent (``current_shifts``, ``next_shifts``,
``current_responders``, who an escalation notified) is computed from the
sandbox clock at request time, so moving the clock moves who is on call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from automations.sandbox.catalog import Catalog
from automations.sandbox.model import JSON, ORGANISATION_SLUG, IdFactory, Incident, iso
from automations.sandbox.rotations import Entry, Schedule, current_shifts, next_shifts

ESCALATION_STATUSES = (
    "pending", "triggered", "acked", "resolved", "expired",
    "cancelled", "delayed", "pending_repeat", "snoozed",
)  # fmt: skip
PATH_KINDS = ("standalone", "templated")
ESCALATIONS_LIMIT = "escalations"
# Routes with a rate limit of their own (per key, per minute), on top of the 1200/min.
ROUTE_LIMITS = {ESCALATIONS_LIMIT: 60}
# IncidentSlimV2 names two categories the way the app labels them.
SLIM_CATEGORY = {"live": "active", "learning": "post-incident"}


@dataclass(frozen=True)
class Target:
    """Whom a level pages: everyone on call in a schedule now, or one user."""

    type: str  # schedule | user
    id: str


@dataclass(frozen=True)
class Level:
    node_id: str
    targets: tuple[Target, ...]
    time_to_ack_seconds: int


@dataclass(frozen=True)
class EscalationPath:
    """A standalone path: its levels in order, then a repeat back to the first."""

    id: str
    name: str
    levels: tuple[Level, ...]
    repeat_node_id: str
    repeat_times: int
    team_ids: tuple[str, ...] = ()


@dataclass
class Escalation:
    id: str
    title: str
    description: str
    status: str
    created_at: datetime
    notified_user_ids: tuple[str, ...]
    event_ids: tuple[str, str]
    escalation_path_id: str | None = None
    incident_id: str | None = None


@dataclass
class OnCall:
    """The organisation's on-call setup and the escalations created through the API."""

    schedules: tuple[Schedule, ...]
    paths: tuple[EscalationPath, ...]
    new_id: IdFactory
    escalations: list[Escalation] = field(default_factory=list)
    escalation_keys: dict[str, Escalation] = field(default_factory=dict)

    def schedule(self, schedule_id: str) -> Schedule | None:
        return next((s for s in self.schedules if s.id == schedule_id), None)

    def path(self, path_id: str) -> EscalationPath | None:
        return next((p for p in self.paths if p.id == path_id), None)

    def responders(self, level: Level, now: datetime) -> list[str]:
        """User IDs a level pages at ``now``: schedules' current shifts, then named users."""
        out: list[str] = []
        for target in level.targets:
            if target.type == "user":
                found = [target.id]
            else:
                schedule = self.schedule(target.id)
                found = [e.user_id for e in current_shifts(schedule, now)] if schedule else []
            out += [user_id for user_id in found if user_id not in out]
        return out


# --- rendering ---------------------------------------------------------------


def render_entry(schedule: Schedule, entry: Entry, catalog: Catalog) -> JSON:
    """ScheduleEntryV2; ``entry_id`` only for a stored override (a computed shift has none)."""
    body: JSON = {
        "start_at": iso(entry.start_at),
        "end_at": iso(entry.end_at),
        "user": catalog.embedded[entry.user_id],
        "rotation_id": entry.rotation_id,
        "layer_id": entry.layer_id,
        "fingerprint": entry.fingerprint(schedule.id),
    }
    if entry.entry_id is not None:
        body["entry_id"] = entry.entry_id
    return body


def render_schedule(
    schedule: Schedule, catalog: Catalog, now: datetime, *, with_next: bool
) -> JSON:
    """ScheduleV2 with its rotations, who is on call at ``now`` and (if asked) who is next."""
    rotations = [
        {
            "id": r.id,
            "name": r.name,
            "handover_start_at": iso(r.handover_start_at),
            "handovers": [{"interval": r.interval, "interval_type": r.interval_type}],
            "layers": [{"id": r.layer_id, "name": r.layer_name}],
            "users": [catalog.embedded[u] for u in r.user_ids],
            "working_intervals": [],
        }
        for r in schedule.rotations
    ]
    body: JSON = {
        "id": schedule.id,
        "name": schedule.name,
        "timezone": schedule.timezone,
        "permalink": f"https://app.incident.io/{ORGANISATION_SLUG}/on-call/schedules/{schedule.id}",
        "annotations": {},
        "team_ids": list(schedule.team_ids),
        "created_at": iso(schedule.created_at),
        "updated_at": iso(schedule.created_at),
        "config": {"rotations": rotations},
        "current_shifts": [
            render_entry(schedule, e, catalog) for e in current_shifts(schedule, now)
        ],
    }
    if with_next:
        body["next_shifts"] = [
            render_entry(schedule, e, catalog) for e in next_shifts(schedule, now)
        ]
    return body


def _level_node(level: Level) -> JSON:
    targets: list[JSON] = []
    for target in level.targets:
        rendered: JSON = {"type": target.type, "id": target.id, "urgency": "high"}
        if target.type == "schedule":
            rendered["schedule_mode"] = "currently_on_call"
        targets.append(rendered)
    return {
        "id": level.node_id,
        "type": "level",
        "level": {
            "targets": targets,
            "ack_mode": "first",
            "time_to_ack_seconds": level.time_to_ack_seconds,
            "round_robin_config": {"enabled": False},
        },
    }


def render_path(path: EscalationPath, oncall: OnCall, catalog: Catalog, now: datetime) -> JSON:
    """EscalationPathV2; ``current_responders`` are whom its first level pages at ``now``."""
    nodes = [_level_node(level) for level in path.levels]
    repeat = {"to_node": path.levels[0].node_id, "repeat_times": path.repeat_times}
    nodes.append({"id": path.repeat_node_id, "type": "repeat", "repeat": repeat})
    responders = oncall.responders(path.levels[0], now)
    return {
        "id": path.id,
        "name": path.name,
        "kind": "standalone",
        "path": nodes,
        "team_ids": list(path.team_ids),
        "current_responders": [catalog.embedded[u] for u in responders],
    }


def render_incident_slim(incident: Incident, catalog: Catalog) -> JSON:
    """IncidentSlimV2, as an escalation's ``related_incidents`` lists it."""
    category = catalog.status_by_id[incident.status_id].category
    body: JSON = {
        "id": incident.id,
        "external_id": incident.number,
        "name": incident.name,
        "reference": incident.reference,
        "visibility": incident.visibility,
        "status_category": SLIM_CATEGORY.get(category, category),
    }
    if incident.summary is not None:
        body["summary"] = incident.summary
    return body


def render_escalation(escalation: Escalation, catalog: Catalog, incident: Incident | None) -> JSON:
    """EscalationV2. Created with the API key: the creator (user, workflow or alert) is empty."""
    at = iso(escalation.created_at)
    triggered, notified = escalation.event_ids
    events: list[dict[str, Any]] = [{"id": triggered, "event": "triggered", "occurred_at": at}]
    if escalation.notified_user_ids:
        events.append(
            {
                "id": notified,
                "event": "notified_users",
                "occurred_at": at,
                "urgency": "high",
                "users": [catalog.embedded[u] for u in escalation.notified_user_ids],
            }
        )
    body: JSON = {
        "id": escalation.id,
        "title": escalation.title,
        "description": escalation.description,
        "status": escalation.status,
        "priority": {"name": "P1"},
        "creator": {},
        "events": events,
        "related_incidents": [render_incident_slim(incident, catalog)] if incident else [],
        "related_alerts": [],
        "created_at": at,
        "updated_at": at,
    }
    if escalation.escalation_path_id is not None:
        body["escalation_path_id"] = escalation.escalation_path_id
    return body
