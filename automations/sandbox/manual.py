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
    follow_ups [{title, status?, assignee?, description?, labels?, created_at?}]

A status or severity change appends an incident update by ``updater``
(default: the incident lead, else the first user) and bumps updated_at.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from automations.sandbox.catalog import Catalog, UnknownName
from automations.sandbox.errors import invalid
from automations.sandbox.filters import parse_when
from automations.sandbox.model import (
    FOLLOW_UP_STATUSES,
    JSON,
    MODES,
    VISIBILITIES,
    FollowUp,
    Incident,
    User,
    user_actor,
)
from automations.sandbox.mutations import record_change, stamp_lifecycle
from automations.sandbox.store import Store

FIELDS = (
    "name", "summary", "created_at", "updated_at", "status", "severity", "incident_type",
    "mode", "visibility", "custom_fields", "lead", "roles", "timestamps",
    "postmortem_document_url", "call_url", "slack_channel_id", "slack_channel_name",
    "creator", "updater", "follow_ups",
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
        if parsed:
            incident.custom_fields[custom_field.id] = parsed
        else:
            incident.custom_fields.pop(custom_field.id, None)


def _apply_roles(catalog: Catalog, incident: Incident, spec: Any) -> None:
    if not isinstance(spec, dict):
        raise invalid("roles", "roles must be an object of role -> user")
    for ref, user_ref in spec.items():
        role = catalog.resolve(catalog.roles, ref, "incident role")
        if user_ref is None:
            incident.roles.pop(role.id, None)
        else:
            incident.roles[role.id] = _user(catalog, "roles", user_ref).id


def _apply_timestamps(catalog: Catalog, incident: Incident, spec: Any) -> None:
    if not isinstance(spec, dict):
        raise invalid("timestamps", "timestamps must be an object of name -> RFC3339")
    for ref, raw in spec.items():
        timestamp = catalog.resolve(catalog.timestamps, ref, "incident timestamp")
        if raw is None:
            incident.timestamps.pop(timestamp.id, None)
        else:
            incident.timestamps[timestamp.id] = _time("timestamps", raw)


def _follow_ups(store: Store, incident: Incident, spec: Any, now: datetime) -> list[FollowUp]:
    if not isinstance(spec, list) or not all(isinstance(s, dict) for s in spec):
        raise invalid("follow_ups", "follow_ups must be a list of objects")
    catalog = store.catalog
    out = []
    for item in spec:
        status = item.get("status", "outstanding")
        if status not in FOLLOW_UP_STATUSES:
            raise invalid("follow_ups", f"status must be one of {', '.join(FOLLOW_UP_STATUSES)}")
        title = item.get("title")
        if not isinstance(title, str) or not title:
            raise invalid("follow_ups", "each follow-up needs a title")
        created = _time("follow_ups", item["created_at"]) if "created_at" in item else now
        assignee = item.get("assignee")
        out.append(
            FollowUp(
                id=store.new_id(),
                incident_id=incident.id,
                title=title,
                status=status,
                creator=user_actor(catalog.users[0]),
                created_at=created,
                updated_at=created,
                assignee_id=_user(catalog, "follow_ups", assignee).id if assignee else None,
                completed_at=created if status == "completed" else None,
                description=_optional_text("follow_ups", item.get("description")),
                labels=tuple(str(label) for label in item.get("labels", [])),
            )
        )
    return out


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
        updater = _updater(catalog, draft, spec.get("updater"))
    except UnknownName as exc:
        raise invalid("incident", str(exc)) from None
    old_status, old_severity = incident.status_id, incident.severity_id
    incident.__dict__.update(draft.__dict__)
    store.follow_ups.extend(follow_ups)
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
    if creating:
        incident.updated_at = incident.created_at
        reported = catalog.timestamp_named("Reported at").id
        incident.timestamps.setdefault(reported, incident.created_at)
    else:
        incident.updated_at = now
    if "updated_at" in spec:
        incident.updated_at = _time("updated_at", spec["updated_at"])
