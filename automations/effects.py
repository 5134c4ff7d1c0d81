"""Effectors: how the engine carries out each kind of action, one small class per effect.

The engine's step "effect" (claim -> re-read -> re-check -> effect -> record) calls
the action's effector. An effector either returns what happened (``Applied``) or
raises: ``APIRejected`` when the API refused (final, nothing changed) and any
other ``APIError`` when the outcome is unknown (the claim stays unconfirmed and
``Engine.reconcile`` settles it from the incident's state).

- ``edit``: POST /v2/incidents/{id}/actions/edit, sent once, never resent blindly.
- ``notify``: nothing happens to the incident; the action exists for the
  notifications recorded with it (a notice rule), so it cannot fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from automations.incidentio import Incident, IncidentIOClient
from automations.rules.base import Effect, PlannedAction


@dataclass(frozen=True)
class Applied:
    """An effect that took place: the API's request ID, and the incident as it is after it."""

    request_id: str | None
    incident: Incident


class Effector(Protocol):
    def apply(self, action: PlannedAction, fresh: Incident) -> Applied: ...


class EditEffector:
    """Edit the incident with exactly the fields the action sets."""

    def __init__(self, client: IncidentIOClient) -> None:
        self.client = client

    def apply(self, action: PlannedAction, fresh: Incident) -> Applied:
        assert action.edit is not None  # PlannedAction refuses an edit action without one
        edited = self.client.edit_incident(
            action.incident_id, action.edit, notify_incident_channel=action.notify_incident_channel
        )
        return Applied(self.client.last_request_id, edited)


class NotifyEffector:
    """No change to the incident: the action's notifications are the whole effect."""

    def apply(self, action: PlannedAction, fresh: Incident) -> Applied:
        return Applied(None, fresh)


def effectors(client: IncidentIOClient) -> dict[Effect, Effector]:
    """One effector per effect, for one engine."""
    return {"edit": EditEffector(client), "notify": NotifyEffector()}
