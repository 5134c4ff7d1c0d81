"""Changes a human makes in the app, driven by the control routes.

``POST /_sandbox/incidents`` and ``PATCH /_sandbox/incidents/{id}`` take
friendly fields (names or IDs) and bypass the API's lifecycle rules, so tests
can put an incident in any state, or undo what the daemon did. Fields:

    name, summary, created_at, updated_at (RFC3339), status, severity,
    incident_type (ID or name; severity may be null), mode, visibility,
    custom_fields {field name or ID: option value/ID, text, a list, or null},
    lead (user ID, email, Slack ID or name; null unassigns),
    roles {role name or ID: user or null}, timestamps {name or ID: RFC3339 or null},
    postmortem_document_url, call_url, slack_channel_name (null clears),
    slack_channel_id, creator (add only), updater (patch: who made the change),
    teams [team name or ID] (the incident's team_ids), postmortem_document_ids [ID],
    debriefs [{start_at, end_at}] (RFC3339; replace the incident's debriefs),
    follow_ups [{title, status?, assignee?, assignee_team?, priority?, category?,
    description?, labels?, created_at?}] (added to the incident's follow-ups)

``PATCH /_sandbox/follow_ups/{id}`` changes one follow-up (``change_follow_up``):
status, title, description, assignee, assignee_team, priority, category (null
clears), labels, updated_at; it bumps the follow-up's updated_at and its
incident's last_activity_at, as a change in the app would.

A status or severity change appends an incident update by ``updater``
(default: the incident lead, else the first user) and bumps updated_at.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from typing import Any

from automations.sandbox.catalog import Catalog, UnknownSandboxName
from automations.sandbox.errors import SandboxErrorResponse, invalid
from automations.sandbox.filters import parse_when
from automations.sandbox.model import (
    FOLLOW_UP_STATUSES,
    JSON,
    MODES,
    VISIBILITIES,
    FollowUp,
    FollowUpPriority,
    Incident,
    Team,
    User,
    user_actor,
)
from automations.sandbox.mutations import record_change, set_or_drop, stamp_lifecycle
from automations.sandbox.store import Store

FIELDS = (
    "name", "summary", "created_at", "updated_at", "status", "severity", "incident_type",
    "mode", "visibility", "custom_fields", "lead", "roles", "timestamps",
    "postmortem_document_url", "call_url", "slack_channel_id", "slack_channel_name",
    "creator", "updater", "follow_ups", "teams", "postmortem_document_ids", "debriefs",
)  # fmt: skip
FOLLOW_UP_FIELDS = (
    "status", "title", "description", "assignee", "assignee_team", "priority", "category",
    "labels", "updated_at",
)  # fmt: skip


def _user(catalog: Catalog, key: str, ref: Any) -> User:
    user = catalog.find_user(ref) if isinstance(ref, str) else None
    if user is None:
        raise invalid(key, f"no user {ref!r} (use an ID, email, Slack user ID or name)")
    return user


def _time(key: str, value: Any) -> datetime:
    if not isinstance(value, str):
        raise invalid(key, f"{key} must be an RFC3339 timestamp")
    return parse_when(key, value)


def _optional_text(key: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise invalid(key, f"{key} must be a string or null")
    return value


def _apply_custom_fields(catalog: Catalog, incident: Incident, spec: Any) -> None:
    if not isinstance(spec, dict):
        raise invalid("custom_fields", "custom_fields must be an object of field -> value")
    for ref, raw in spec.items():
        custom_field = catalog.resolve(catalog.custom_fields, ref, "custom field")
        values = [] if raw is None else raw if isinstance(raw, list) else [raw]
        if custom_field.is_select:
            parsed = tuple(catalog.resolve_option(custom_field, str(v)).id for v in values)
        else:
            parsed = tuple(str(v) for v in values)
        set_or_drop(incident.custom_fields, custom_field.id, parsed or None)


def _apply_roles(catalog: Catalog, incident: Incident, spec: Any) -> None:
    if not isinstance(spec, dict):
        raise invalid("roles", "roles must be an object of role -> user")
    for ref, user_ref in spec.items():
        role = catalog.resolve(catalog.roles, ref, "incident role")
        user_id = None if user_ref is None else _user(catalog, "roles", user_ref).id
        set_or_drop(incident.roles, role.id, user_id)


def _apply_timestamps(catalog: Catalog, incident: Incident, spec: Any) -> None:
    if not isinstance(spec, dict):
        raise invalid("timestamps", "timestamps must be an object of name -> RFC3339")
    for ref, raw in spec.items():
        timestamp = catalog.resolve(catalog.timestamps, ref, "incident timestamp")
        value = None if raw is None else _time("timestamps", raw)
        set_or_drop(incident.timestamps, timestamp.id, value)


def _team(catalog: Catalog, key: str, ref: Any) -> Team:
    team = next((t for t in catalog.teams if ref in (t.id, t.name)), None)
    if team is None:
        names = ", ".join(t.name for t in catalog.teams)
        raise invalid(key, f"no team {ref!r}; teams: {names}")
    return team


def _follow_up_option(options: tuple[FollowUpPriority, ...], key: str, ref: Any) -> str:
    found = next((o for o in options if ref in (o.id, o.name)), None)
    if found is None:
        raise invalid(key, f"no {key} {ref!r}; one of: {', '.join(o.name for o in options)}")
    return found.id


def _follow_up_status(follow_up: FollowUp, status: Any, now: datetime) -> None:
    if status not in FOLLOW_UP_STATUSES:
        raise invalid("status", f"status must be one of {', '.join(FOLLOW_UP_STATUSES)}")
    if status == "completed" and follow_up.status != "completed":
        follow_up.completed_at = now
    elif status != "completed":
        follow_up.completed_at = None
    follow_up.status = status


def _set_follow_up_fields(catalog: Catalog, follow_up: FollowUp, spec: JSON, now: datetime) -> None:
    """The fields of FOLLOW_UP_FIELDS present in ``spec`` (null clears an optional one)."""
    if "status" in spec:
        _follow_up_status(follow_up, spec["status"], now)
    if "title" in spec:
        if not isinstance(spec["title"], str) or not spec["title"]:
            raise invalid("title", "a follow-up needs a title")
        follow_up.title = spec["title"]
    if "description" in spec:
        follow_up.description = _optional_text("description", spec["description"])
    if "labels" in spec:
        if not isinstance(spec["labels"], list):
            raise invalid("labels", "labels must be a list of strings")
        follow_up.labels = tuple(str(label) for label in spec["labels"])
    refs: dict[str, Callable[[Any], str]] = {
        "assignee": lambda ref: _user(catalog, "assignee", ref).id,
        "assignee_team": lambda ref: _team(catalog, "assignee_team", ref).id,
        "priority": lambda ref: _follow_up_option(catalog.follow_up_priorities, "priority", ref),
        "category": lambda ref: _follow_up_option(catalog.follow_up_categories, "category", ref),
    }
    for key, resolve in refs.items():
        if key in spec:
            value = None if spec[key] is None else resolve(spec[key])
            setattr(follow_up, f"{key}_id", value)


def _follow_ups(store: Store, incident: Incident, spec: Any, now: datetime) -> list[FollowUp]:
    if not isinstance(spec, list) or not all(isinstance(s, dict) for s in spec):
        raise invalid("follow_ups", "follow_ups must be a list of objects")
    out = []
    for item in spec:
        unknown = sorted(set(item) - {*FOLLOW_UP_FIELDS, "created_at"})
        if unknown:
            raise invalid("follow_ups", f"unknown follow-up field {unknown[0]!r}")
        if not isinstance(item.get("title"), str) or not item["title"]:
            raise invalid("follow_ups", "each follow-up needs a title")
        created = _time("follow_ups", item["created_at"]) if "created_at" in item else now
        follow_up = FollowUp(
            id=store.new_id(),
            incident_id=incident.id,
            title=item["title"],
            status="outstanding",
            creator=user_actor(store.catalog.users[0]),
            created_at=created,
            updated_at=created,
        )
        try:
            _set_follow_up_fields(
                store.catalog, follow_up, {"status": "outstanding", **item}, created
            )
        except SandboxErrorResponse as exc:
            raise invalid("follow_ups", exc.message) from None
        if "updated_at" in item:
            follow_up.updated_at = _time("follow_ups", item["updated_at"])
        out.append(follow_up)
    return out


def _debriefs(store: Store, spec: Any) -> tuple[tuple[str, datetime, datetime], ...]:
    if not isinstance(spec, list) or not all(isinstance(d, dict) for d in spec):
        raise invalid("debriefs", "debriefs must be a list of {start_at, end_at}")
    out = []
    for item in spec:
        start, end = (_time("debriefs", item.get(key)) for key in ("start_at", "end_at"))
        if end < start:
            raise invalid("debriefs", "a debrief cannot end before it starts")
        out.append((store.new_id(), start, end))
    return tuple(out)


def change_follow_up(store: Store, follow_up: FollowUp, spec: JSON, now: datetime) -> None:
    """A change made in the app: all or nothing, then updated_at and the incident's activity."""
    unknown = sorted(set(spec) - set(FOLLOW_UP_FIELDS))
    if unknown:
        raise invalid(
            unknown[0], f"unknown field {unknown[0]!r}; known: {', '.join(FOLLOW_UP_FIELDS)}"
        )
    draft = copy.deepcopy(follow_up)
    _set_follow_up_fields(store.catalog, draft, spec, now)
    draft.updated_at = _time("updated_at", spec["updated_at"]) if "updated_at" in spec else now
    follow_up.__dict__.update(draft.__dict__)
    incident = store.get(follow_up.incident_id)
    if incident is not None:
        incident.last_activity_at = max(incident.last_activity_at or now, now)
    store.follow_up_changed(follow_up, incident)


def apply_manual(
    store: Store, incident: Incident, spec: JSON, now: datetime, *, creating: bool
) -> None:
    """Apply ``spec`` to ``incident`` all or nothing; the caller then adds or touches it."""
    catalog = store.catalog
    unknown = sorted(set(spec) - set(FIELDS))
    if unknown:
        raise invalid(unknown[0], f"unknown field {unknown[0]!r}; known: {', '.join(FIELDS)}")
    draft = copy.deepcopy(incident)
    try:
        _apply(catalog, draft, spec, now, creating=creating)
        follow_ups = _follow_ups(store, draft, spec.get("follow_ups", []), now)
        if "debriefs" in spec:
            draft.debriefs = _debriefs(store, spec["debriefs"])
        updater = _updater(catalog, draft, spec.get("updater"))
    except UnknownSandboxName as exc:
        raise invalid("incident", str(exc)) from None
    old_status, old_severity = incident.status_id, incident.severity_id
    incident.__dict__.update(draft.__dict__)
    store.add_follow_ups(follow_ups)
    if follow_ups and not creating:
        incident.last_activity_at = now
    if not creating:
        record_change(
            store,
            incident,
            status_changed=incident.status_id != old_status,
            severity_changed=incident.severity_id != old_severity,
            updater=user_actor(updater),
            now=now,
        )


def _updater(catalog: Catalog, incident: Incident, ref: Any) -> User:
    if ref is not None:
        return _user(catalog, "updater", ref)
    lead_id = incident.roles.get(catalog.role_of_type("lead").id)
    return catalog.user_by_id[lead_id] if lead_id else catalog.users[0]


def _apply(
    catalog: Catalog, incident: Incident, spec: JSON, now: datetime, *, creating: bool
) -> None:
    old_status = incident.status_id
    if "name" in spec:
        if not isinstance(spec["name"], str) or not spec["name"]:
            raise invalid("name", "name must be a non-empty string")
        incident.name = spec["name"]
    for key in ("summary", "postmortem_document_url", "call_url", "slack_channel_name"):
        if key in spec:
            setattr(incident, key, _optional_text(key, spec[key]))
    if "slack_channel_id" in spec:
        channel = _optional_text("slack_channel_id", spec["slack_channel_id"])
        incident.slack_channel_id = channel or ""
    if "created_at" in spec:
        incident.created_at = _time("created_at", spec["created_at"])
    if "mode" in spec:
        if spec["mode"] not in MODES:
            raise invalid("mode", f"mode must be one of {', '.join(MODES)}")
        incident.mode = spec["mode"]
    if "visibility" in spec:
        if spec["visibility"] not in VISIBILITIES:
            raise invalid("visibility", "visibility must be public or private")
        incident.visibility = spec["visibility"]
    if "status" in spec:
        status = catalog.resolve(catalog.statuses, str(spec["status"]), "status")
        incident.status_id = status.id
        if status.id != old_status:
            # Added in this status: its lifecycle dates from its creation, not from the call.
            stamp_lifecycle(catalog, incident, status, incident.created_at if creating else now)
    if "severity" in spec:
        raw = spec["severity"]
        incident.severity_id = (
            None if raw is None else catalog.resolve(catalog.severities, str(raw), "severity").id
        )
    if "incident_type" in spec:
        raw = spec["incident_type"]
        incident.type_id = (
            None if raw is None else catalog.resolve(catalog.types, str(raw), "incident type").id
        )
    if creating and "creator" in spec:
        incident.creator = user_actor(_user(catalog, "creator", spec["creator"]))
    if "custom_fields" in spec:
        _apply_custom_fields(catalog, incident, spec["custom_fields"])
    if "lead" in spec:
        _apply_roles(catalog, incident, {catalog.role_of_type("lead").id: spec["lead"]})
    if "roles" in spec:
        _apply_roles(catalog, incident, spec["roles"])
    if "timestamps" in spec:
        _apply_timestamps(catalog, incident, spec["timestamps"])
    if "teams" in spec:
        if not isinstance(spec["teams"], list):
            raise invalid("teams", "teams must be a list of team names or IDs")
        incident.team_ids = tuple(_team(catalog, "teams", ref).id for ref in spec["teams"])
    if "postmortem_document_ids" in spec:
        ids = spec["postmortem_document_ids"]
        if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
            raise invalid(
                "postmortem_document_ids", "postmortem_document_ids must be a list of IDs"
            )
        incident.postmortem_document_ids = tuple(ids)
    if creating:
        incident.updated_at = incident.created_at
        reported = catalog.timestamp_named("Reported at").id
        incident.timestamps.setdefault(reported, incident.created_at)
    else:
        incident.updated_at = now
    if "updated_at" in spec:
        incident.updated_at = _time("updated_at", spec["updated_at"])
