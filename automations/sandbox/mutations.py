"""Create and edit through the API, with the real API's validation (sections 8 and 9).

Every payload is validated in full before anything changes, so a 422 never
leaves a half-edited incident behind. Choices on open questions (section 13):

- A replayed ``idempotency_key`` returns 200 with the incident it created,
  whatever the new payload says.
- Without ``incident_status_id`` an incident opens in the first live status;
  ``severity_id`` is required unless the status is a triage one. Creating
  straight into declined, merged, canceled or paused is refused.
- Non-status fields stay editable on closed and declined incidents; edit
  accepts the numeric reference like show does.
- An edit that changes status or severity appends an incident update (a
  severity-only change too); moving into learning or closed fills in
  "Resolved at" / "Closed at" when they are empty.
- Unknown keys inside ``incident`` are ignored, as Go's JSON decoding does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from automations.sandbox.catalog import Catalog
from automations.sandbox.errors import (
    SandboxErrorResponse,
    body_object,
    invalid,
    required,
    within,
)
from automations.sandbox.filters import parse_when
from automations.sandbox.model import (
    JSON,
    MODES,
    VISIBILITIES,
    Incident,
    IncidentUpdate,
    Status,
    api_key_actor,
)
from automations.sandbox.store import Store

CLOSED_FOR_GOOD = ("closed", "declined", "merged", "canceled")
NOT_ENTERABLE = ("triage", "declined", "merged", "canceled", "paused")
V = TypeVar("V")

NOT_CREATABLE = ("declined", "merged", "canceled", "paused")
LIFECYCLE_TIMESTAMPS = {
    "live": ("Accepted at",),
    "learning": ("Accepted at", "Resolved at"),
    "closed": ("Accepted at", "Resolved at", "Closed at"),
}
ALLOWED_MOVES = frozenset(
    {
        ("triage", "learning"),
        ("triage", "closed"),
        ("live", "learning"),
        ("live", "closed"),
        ("learning", "closed"),
    }
)


def _string(payload: JSON, key: str, *, allow_empty: bool = True) -> str | None:
    if key not in payload:
        return None
    value = payload[key]
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise invalid(
            key,
            f"{key} must be a non-empty string" if not allow_empty else f"{key} must be a string",
        )
    return value


def idempotency_key(payload: JSON, message: str | None = None) -> str:
    """The body's required, non-empty ``idempotency_key``: what makes a create safe to replay."""
    key = _string(payload, "idempotency_key", allow_empty=False)
    if key is None:
        raise required("idempotency_key", message)
    return key


def _list(payload: JSON, key: str) -> list[Any] | None:
    if key not in payload:
        return None
    value = payload[key]
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise invalid(key, f"{key} must be a list of objects")
    return value


def check_transition(current: Status, target: Status) -> None:
    """The simulator's lifecycle rule for API edits (section 9)."""
    if current.id == target.id:
        return
    move = (current.category, target.category)
    if target.category in NOT_ENTERABLE:
        refusal = f"incidents cannot be moved into a {target.category} status via the API"
    elif current.category in CLOSED_FOR_GOOD:
        refusal = f"a {current.category} incident cannot change status via the API"
    elif current.category == target.category or move in ALLOWED_MOVES:
        return
    else:
        refusal = (
            f"cannot move an incident from {current.category} to {target.category}; "
            "make this change in the app"
        )
    raise invalid("incident_status_id", refusal, code="invalid_status_transition")


def parse_custom_fields(
    catalog: Catalog, entries: list[Any], key: str = "custom_field_entries"
) -> dict[str, tuple[str, ...]]:
    """CustomFieldEntryPayloadV2 list to field ID -> values (``[]`` unsets)."""
    out: dict[str, tuple[str, ...]] = {}
    for entry in entries:
        field_id = entry.get("custom_field_id")
        custom_field = catalog.field_by_id.get(field_id) if isinstance(field_id, str) else None
        if custom_field is None:
            raise invalid(key, f"no custom field with ID {field_id!r}")
        values = entry.get("values")
        if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
            raise required(key, f"values for custom field {custom_field.name} must be a list")
        parsed: list[str] = []
        for value in values:
            if custom_field.is_select:
                option_id = value.get("value_option_id")
                if not isinstance(option_id, str) or custom_field.option(option_id) is None:
                    raise invalid(
                        key, f"{option_id!r} is not an option of custom field {custom_field.name}"
                    )
                parsed.append(option_id)
            else:
                attr = "value_" + custom_field.field_type
                raw = value.get(attr)
                if not isinstance(raw, str):
                    raise invalid(key, f"custom field {custom_field.name} needs {attr}")
                parsed.append(raw)
        if custom_field.field_type != "multi_select" and len(parsed) > 1:
            raise invalid(key, f"custom field {custom_field.name} takes a single value")
        out[custom_field.id] = tuple(parsed)
    return out


def parse_role_assignments(
    catalog: Catalog, entries: list[Any], *, allow_reporter: bool
) -> dict[str, str | None]:
    """IncidentRoleAssignmentPayloadV2 list to role ID -> user ID (None unassigns)."""
    key = "incident_role_assignments"
    out: dict[str, str | None] = {}
    for entry in entries:
        role = catalog.role_by_id.get(entry.get("incident_role_id", ""))
        if role is None:
            raise invalid(key, f"no incident role with ID {entry.get('incident_role_id')!r}")
        if role.role_type == "reporter" and not allow_reporter:
            raise invalid(key, "the reporter role can only be set when the incident is created")
        assignee = entry.get("assignee")
        if assignee is None:
            out[role.id] = None
            continue
        if not isinstance(assignee, dict):
            raise invalid(key, "assignee must be an object with id, email or slack_user_id")
        user = None
        for attr in ("id", "email", "slack_user_id"):
            ref = assignee.get(attr)
            if isinstance(ref, str):
                user = next((u for u in catalog.users if getattr(u, attr) == ref), None)
                if user is None:
                    raise invalid(key, f"no user with {attr} {ref!r}")
                break
        if user is None:
            raise invalid(key, "assignee needs one of id, email or slack_user_id")
        out[role.id] = user.id
    return out


def parse_timestamps(catalog: Catalog, entries: list[Any]) -> dict[str, datetime | None]:
    key = "incident_timestamp_values"
    out: dict[str, datetime | None] = {}
    for entry in entries:
        timestamp = catalog.timestamp_by_id.get(entry.get("incident_timestamp_id", ""))
        if timestamp is None:
            raise invalid(
                key, f"no incident timestamp with ID {entry.get('incident_timestamp_id')!r}"
            )
        value = entry.get("value")
        if value is None:
            out[timestamp.id] = None
        elif isinstance(value, str):
            out[timestamp.id] = parse_when(key, value)
        else:
            raise invalid(key, "value must be an RFC3339 timestamp")
    return out


def set_or_drop(values: dict[str, V], key: str, value: V | None) -> None:
    """Set ``key``, or drop it for None: how a role, a custom field or a timestamp is unset."""
    if value is None:
        values.pop(key, None)
    else:
        values[key] = value


def apply_role_changes(incident: Incident, changes: dict[str, str | None]) -> None:
    for role_id, user_id in changes.items():
        set_or_drop(incident.roles, role_id, user_id)


def apply_field_changes(incident: Incident, changes: dict[str, tuple[str, ...]]) -> None:
    for field_id, values in changes.items():
        set_or_drop(incident.custom_fields, field_id, values or None)


def apply_timestamp_changes(incident: Incident, changes: dict[str, datetime | None]) -> None:
    for timestamp_id, value in changes.items():
        set_or_drop(incident.timestamps, timestamp_id, value)


def stamp_lifecycle(catalog: Catalog, incident: Incident, status: Status, now: datetime) -> None:
    """Fill the lifecycle timestamps a status change implies, if they are empty."""
    names = LIFECYCLE_TIMESTAMPS.get(status.category, ())
    for name in names:
        timestamp = catalog.timestamp_named(name)
        incident.timestamps.setdefault(timestamp.id, now)


def record_change(
    store: Store,
    incident: Incident,
    *,
    status_changed: bool,
    severity_changed: bool,
    updater: JSON,
    now: datetime,
    message: str | None = None,
) -> None:
    """Append the IncidentUpdate that a status or severity change produces."""
    if not (status_changed or severity_changed):
        return
    store.add_update(
        IncidentUpdate(
            id=store.new_id(),
            incident_id=incident.id,
            status_id=incident.status_id,
            updater=updater,
            created_at=now,
            severity_id=incident.severity_id if severity_changed else None,
            message=message,
        )
    )


def create_incident(store: Store, payload: Any, now: datetime) -> Incident:
    """POST /v2/incidents; a replayed idempotency_key returns the original incident."""
    catalog = store.catalog
    payload = body_object(payload)
    key = idempotency_key(payload)
    existing_id = store.idempotency.get(key)
    if existing_id is not None:
        existing = store.get(existing_id)
        assert existing is not None
        return existing
    visibility = _string(payload, "visibility")
    if visibility is None:
        raise required("visibility", "visibility is required")
    if visibility not in VISIBILITIES:
        raise invalid("visibility", "visibility must be public or private")
    mode = _string(payload, "mode") or "standard"
    if mode not in MODES:
        raise invalid("mode", f"mode must be one of {', '.join(MODES)}")

    status = catalog.first_status("live")
    status_id = _string(payload, "incident_status_id")
    if status_id is not None:
        found = catalog.status_by_id.get(status_id)
        if found is None:
            raise invalid("incident_status_id", f"no incident status with ID {status_id!r}")
        if found.category in NOT_CREATABLE:
            raise invalid("incident_status_id", f"cannot open an incident as {found.category}")
        status = found
    severity_id = _string(payload, "severity_id")
    if severity_id is None and status.category != "triage":
        raise required("severity_id", "A severity is required to open an incident")
    if severity_id is not None and severity_id not in catalog.severity_by_id:
        raise invalid("severity_id", f"no severity with ID {severity_id!r}")
    incident_type = catalog.default_type()
    type_id = _string(payload, "incident_type_id")
    if type_id is not None:
        found_type = catalog.type_by_id.get(type_id)
        if found_type is None:
            raise invalid("incident_type_id", f"no incident type with ID {type_id!r}")
        incident_type = found_type
    if incident_type.private_incidents_only and visibility != "private":
        raise invalid("visibility", f"{incident_type.name} incidents must be private")

    fields = parse_custom_fields(catalog, _list(payload, "custom_field_entries") or [])
    roles = parse_role_assignments(
        catalog, _list(payload, "incident_role_assignments") or [], allow_reporter=True
    )
    timestamps = parse_timestamps(catalog, _list(payload, "incident_timestamp_values") or [])
    retro = payload.get("retrospective_incident_options") or {}
    if not isinstance(retro, dict):
        raise invalid("retrospective_incident_options", "must be an object")

    number = store.next_number()
    incident = Incident(
        id=store.new_id(),
        number=number,
        name=_string(payload, "name") or f"Incident {number}",
        status_id=status.id,
        visibility=visibility,
        mode=mode,
        creator=api_key_actor(catalog.api_key_id),
        created_at=now,
        updated_at=now,
        severity_id=severity_id,
        type_id=incident_type.id,
        summary=_string(payload, "summary") or None,
        slack_channel_name=_string(payload, "slack_channel_name_override") or None,
        idempotency_key=key,
    )
    if isinstance(retro.get("postmortem_document_url"), str):
        incident.postmortem_document_url = retro["postmortem_document_url"]
    if isinstance(retro.get("slack_channel_id"), str):
        incident.slack_channel_id = retro["slack_channel_id"]
    team_id = _string(payload, "slack_team_id")
    if team_id:
        incident.slack_team_id = team_id
    incident.timestamps[catalog.timestamp_named("Reported at").id] = now
    stamp_lifecycle(catalog, incident, status, now)
    apply_field_changes(incident, fields)
    apply_role_changes(incident, roles)
    apply_timestamp_changes(incident, timestamps)
    store.add(incident)
    store.idempotency[key] = incident.id
    return incident


def edit_incident(store: Store, incident: Incident, payload: Any, now: datetime) -> Incident:
    """POST /v2/incidents/{id}/actions/edit: partial update, lifecycle rules enforced."""
    catalog = store.catalog
    payload = body_object(payload)
    if "incident" not in payload:
        raise required("incident", "incident is required")
    if "notify_incident_channel" not in payload:
        raise required("notify_incident_channel", "notify_incident_channel is required")
    if not isinstance(payload["notify_incident_channel"], bool):
        raise invalid("notify_incident_channel", "notify_incident_channel must be a boolean")
    changes = payload["incident"]
    if not isinstance(changes, dict):
        raise invalid("incident", "incident must be an object")

    try:  # errors inside the edit's ``incident`` point there (/incident/severity_id)
        name = _string(changes, "name", allow_empty=False)
        summary = _string(changes, "summary")
        call_url = _string(changes, "call_url")
        channel_name = _string(changes, "slack_channel_name_override")
        severity_id = _string(changes, "severity_id")
        if severity_id is not None and severity_id not in catalog.severity_by_id:
            raise invalid("severity_id", f"no severity with ID {severity_id!r}")
        status: Status | None = None
        status_id = _string(changes, "incident_status_id")
        if status_id is not None:
            status = catalog.status_by_id.get(status_id)
            if status is None:
                raise invalid("incident_status_id", f"no incident status with ID {status_id!r}")
            check_transition(catalog.status_by_id[incident.status_id], status)
        fields = parse_custom_fields(catalog, _list(changes, "custom_field_entries") or [])
        roles = parse_role_assignments(
            catalog, _list(changes, "incident_role_assignments") or [], allow_reporter=False
        )
        timestamps = parse_timestamps(catalog, _list(changes, "incident_timestamp_values") or [])
    except SandboxErrorResponse as exc:
        raise within(exc, "incident") from None

    # everything is valid: apply
    if name is not None:
        incident.name = name
    if summary is not None:
        incident.summary = summary or None
    if call_url is not None:
        incident.call_url = call_url or None
    if channel_name is not None:
        incident.slack_channel_name = channel_name or None
    severity_changed = severity_id is not None and severity_id != incident.severity_id
    if severity_id is not None:
        incident.severity_id = severity_id
    status_changed = status is not None and status.id != incident.status_id
    if status is not None and status_changed:
        incident.status_id = status.id
        stamp_lifecycle(catalog, incident, status, now)
    apply_field_changes(incident, fields)
    apply_role_changes(incident, roles)
    apply_timestamp_changes(incident, timestamps)
    incident.updated_at = now
    record_change(
        store,
        incident,
        status_changed=status_changed,
        severity_changed=severity_changed,
        updater=api_key_actor(catalog.api_key_id),
        now=now,
    )
    store.touch(incident)
    return incident
