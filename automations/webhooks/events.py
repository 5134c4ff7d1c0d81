"""The event types the daemon acts on, and what each delivery names: an incident or a follow-up.

The body is ``{"event_type": T, T: payload}`` (docs/incident-io-api.md sections 0 and
11). Only the ID is taken from it: order is not guaranteed and private events
carry nothing else, so the incident itself is always re-read from the API.

- incident created/updated (public): the payload is the incident: ``id``;
- status updated (public): ``{incident, previous_status, new_status}``: ``incident.id``;
- any ``private_incident.*`` event: ``{id}`` only (a follow-up's ID for follow-up events);
- follow-up created/updated (public): the follow-up: ``incident_id`` (and ``id``).

Any other type (schedules, escalations, actions, memberships) is acknowledged and
ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from automations.errors import MalformedWebhookEvent

INCIDENT_EVENTS = frozenset(
    {
        "public_incident.incident_created_v2",
        "public_incident.incident_updated_v2",
        "public_incident.incident_status_updated_v2",
        "private_incident.incident_created_v2",
        "private_incident.incident_updated_v2",
        "private_incident.incident_status_updated_v2",
    }
)
FOLLOW_UP_EVENTS = frozenset(
    {
        "public_incident.follow_up_created_v2",
        "public_incident.follow_up_updated_v2",
        "private_incident.follow_up_created_v2",
        "private_incident.follow_up_updated_v2",
    }
)
HANDLED = INCIDENT_EVENTS | FOLLOW_UP_EVENTS
# An incident.io ID (ULID-like); anything else in a signed body is refused rather than used.
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LONGEST_TYPE = 100


@dataclass(frozen=True)
class WebhookEvent:
    """What one delivery asks for: re-check an incident (or a follow-up's incident)."""

    event_type: str
    incident_id: str | None  # None for a private follow-up event: its incident is looked up
    follow_up_id: str | None = None

    @property
    def about_follow_up(self) -> bool:
        return self.event_type in FOLLOW_UP_EVENTS


def event_type_of(body: Any) -> str:
    """The body's ``event_type``; MalformedWebhookEvent when there is none."""
    if not isinstance(body, Mapping):
        raise MalformedWebhookEvent("the body is not a JSON object")
    event_type = body.get("event_type")
    if not isinstance(event_type, str) or not 0 < len(event_type) <= LONGEST_TYPE:
        raise MalformedWebhookEvent("the body has no event_type")
    return event_type


def parse_event(body: Any) -> WebhookEvent | None:
    """The event a verified body carries; None for a type we do not act on."""
    event_type = event_type_of(body)
    if event_type not in HANDLED:
        return None
    payload = body.get(event_type)
    if not isinstance(payload, Mapping):
        raise MalformedWebhookEvent(f"{event_type}: the body has no {event_type!r} object")
    private = event_type.startswith("private_incident.")
    if event_type in FOLLOW_UP_EVENTS:
        follow_up_id = _id(payload, "id", event_type)
        incident_id = None if private else _id(payload, "incident_id", event_type)
        return WebhookEvent(event_type, incident_id, follow_up_id)
    if event_type.endswith("incident_status_updated_v2") and not private:
        incident = payload.get("incident")
        if not isinstance(incident, Mapping):
            raise MalformedWebhookEvent(f"{event_type}: no incident in the payload")
        return WebhookEvent(event_type, _id(incident, "id", event_type))
    return WebhookEvent(event_type, _id(payload, "id", event_type))


def _id(payload: Mapping[str, Any], key: str, event_type: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not _ID.match(value):
        raise MalformedWebhookEvent(f"{event_type}: {key} is missing or not an incident.io ID")
    return value
