"""``POST /v2/incident_updates``: share an update, optionally moving status or severity.

Body ``{idempotency_key, incident_id, message?, to_incident_status_id?,
to_severity_id?}``, at least one of the last three. Status and severity go
through the edit action itself (``mutations.edit_incident``): the same
lifecycle rules (section 9), the same validation before any change, the same
incident update recorded, and the same ``updated_at`` bump. Its errors are
renamed to this body's keys. A message-only update changes nothing on the
incident but its ``updated_at`` and is still recorded.

Choices where the docs are silent: a replayed key answers 201 with the first
update, whatever the new body says, and changes nothing (as create does); an
unknown incident is a 422 on ``incident_id`` (it is a body field, not the
path); an empty message counts as no message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from automations.sandbox.errors import SandboxErrorResponse, body_object, invalid, required
from automations.sandbox.model import IncidentUpdate, api_key_actor
from automations.sandbox.mutations import _string, edit_incident, idempotency_key
from automations.sandbox.store import Store

# the edit payload's keys -> this body's keys, for error messages and source.field
EDIT_FIELDS = {"incident_status_id": "to_incident_status_id", "severity_id": "to_severity_id"}
CHANGES = ("message", "to_incident_status_id", "to_severity_id")


def post_incident_update(
    store: Store, keys: dict[str, IncidentUpdate], payload: Any, now: datetime
) -> IncidentUpdate:
    """Validate, apply through the edit action, record; a replayed key returns the first."""
    payload = body_object(payload)
    key = idempotency_key(payload)
    if key in keys:
        return keys[key]
    incident_ref = _string(payload, "incident_id", allow_empty=False)
    if incident_ref is None:
        raise required("incident_id")
    incident = store.get(incident_ref)
    if incident is None:
        raise invalid("incident_id", f"no incident with ID {incident_ref!r}")
    message = _string(payload, "message") or None
    status_id = _string(payload, "to_incident_status_id")
    severity_id = _string(payload, "to_severity_id")
    if message is None and status_id is None and severity_id is None:
        raise required("message", f"give at least one of {', '.join(CHANGES)}")

    changes = {"incident_status_id": status_id, "severity_id": severity_id}
    edit = {"incident": {k: v for k, v in changes.items() if v is not None}}
    known = {id(update) for update in store.updates}
    try:
        edit_incident(store, incident, {**edit, "notify_incident_channel": True}, now)
    except SandboxErrorResponse as exc:
        if exc.field not in EDIT_FIELDS:
            raise
        raise SandboxErrorResponse(
            exc.status,
            exc.code,
            exc.message.replace(exc.field, EDIT_FIELDS[exc.field]),
            field=EDIT_FIELDS[exc.field],
        ) from None
    # the edit records an update when status or severity changed; otherwise record one here
    update = next((u for u in store.updates if id(u) not in known), None)
    if update is None:
        update = IncidentUpdate(
            id=store.new_id(),
            incident_id=incident.id,
            status_id=incident.status_id,
            updater=api_key_actor(store.catalog.api_key_id),
            created_at=now,
        )
        store.add_update(update)
    update.message = message
    keys[key] = update
    return update
