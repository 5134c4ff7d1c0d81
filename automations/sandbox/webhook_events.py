"""What incident.io would send for the changes one request made (docs/incident-io-api.md section 0).

Each event is ``(event_type, body)`` with the body ``{"event_type": T, T: payload}``:

- an incident added: ``public_incident.incident_created_v2`` with the incident
  (IncidentV2 plus ``most_recent_update_message`` when an update has a message);
- an incident changed: ``public_incident.incident_updated_v2``, the same payload;
  when its status changed, also ``public_incident.incident_status_updated_v2``
  with ``{incident, previous_status, new_status, message?}`` (``message``: the
  update that moved it, when it has one). A status change is an update too, so
  both are sent, as the real service does;
- a follow-up added or changed: ``public_incident.follow_up_created_v2`` /
  ``..._updated_v2`` with the follow-up (FollowUpV2);
- every event about a private incident is its ``private_incident.*`` twin and
  carries only ``{id}`` (the incident's, or the follow-up's): a receiver must
  fetch the rest with the API. There is no private status event.

An incident added and changed by the same request is only "created"; the same
for follow-ups. ``related_incidents`` is left out: the sandbox has none, and an
absent optional value is omitted, never sent empty or null.
"""

from __future__ import annotations

from automations.sandbox.model import JSON, FollowUp, Incident, IncidentUpdate
from automations.sandbox.render import render_follow_up
from automations.sandbox.store import Changes, Store

Event = tuple[str, JSON]

INCIDENT_CREATED = "incident_created_v2"
INCIDENT_UPDATED = "incident_updated_v2"
STATUS_UPDATED = "incident_status_updated_v2"
FOLLOW_UP_CREATED = "follow_up_created_v2"
FOLLOW_UP_UPDATED = "follow_up_updated_v2"


def events(store: Store, changes: Changes) -> list[Event]:
    """The events for ``changes``, in the order they happened: incidents, then follow-ups."""
    out: list[Event] = []
    for incident_id in changes.created:
        incident = store.get(incident_id)
        if incident is not None:
            out.append(_incident_event(store, incident, INCIDENT_CREATED))
    for incident_id, previous_status in changes.updated.items():
        incident = store.get(incident_id)
        if incident is None:
            continue
        out.append(_incident_event(store, incident, INCIDENT_UPDATED))
        if incident.status_id != previous_status and not _private(incident):
            out.append(_status_event(store, incident, previous_status, changes.updates))
    for kind, ids in (
        (FOLLOW_UP_CREATED, changes.follow_ups_created),
        (FOLLOW_UP_UPDATED, changes.follow_ups_updated),
    ):
        for follow_up_id in ids:
            follow_up = store.follow_up(follow_up_id)
            if follow_up is not None:
                out.append(_follow_up_event(store, follow_up, kind))
    return out


def body(event_type: str, payload: JSON) -> JSON:
    return {"event_type": event_type, event_type: payload}


def _private(incident: Incident | None) -> bool:
    return incident is None or incident.visibility != "public"


def _incident_event(store: Store, incident: Incident, kind: str) -> Event:
    if _private(incident):
        event_type = f"private_incident.{kind}"
        return event_type, body(event_type, {"id": incident.id})
    event_type = f"public_incident.{kind}"
    return event_type, body(event_type, webhook_incident(store, incident))


def webhook_incident(store: Store, incident: Incident) -> JSON:
    """WebhookIncidentV2: the incident as the API shows it, plus its latest update's message."""
    payload = dict(store.render(incident))
    message = next(
        (u.message for u in store.updates if u.incident_id == incident.id and u.message),
        None,
    )
    if message is not None:
        payload["most_recent_update_message"] = message
    return payload


def _status_event(
    store: Store, incident: Incident, previous_status: str, updates: list[IncidentUpdate]
) -> Event:
    catalog = store.catalog
    payload: JSON = {
        "incident": store.render(incident),
        "previous_status": catalog.embedded[previous_status],
        "new_status": catalog.embedded[incident.status_id],
    }
    moved_by = [u for u in updates if u.incident_id == incident.id]
    if moved_by and moved_by[-1].message:
        payload["message"] = moved_by[-1].message
    event_type = f"public_incident.{STATUS_UPDATED}"
    return event_type, body(event_type, payload)


def _follow_up_event(store: Store, follow_up: FollowUp, kind: str) -> Event:
    if _private(store.get(follow_up.incident_id)):
        event_type = f"private_incident.{kind}"
        return event_type, body(event_type, {"id": follow_up.id})
    event_type = f"public_incident.{kind}"
    return event_type, body(event_type, render_follow_up(follow_up, store.catalog))
