"""The incident's own timeline (``INCIDENT_UPDATE_CHANNEL``): a rule's ``announce``.

``POST /v2/incident_updates`` with the notification's key as the idempotency key, so
the update is posted once however often the outbox tries. The message is the rule's
own text, rendered when the action was claimed (``notice.details["message"]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from automations.errors import NotifyRejected
from automations.notify.channels.api_errors import api_outcome
from automations.notify.notice import Notice
from automations.notify.sender import INCIDENT_UPDATE_CHANNEL

if TYPE_CHECKING:
    from automations.incidentio import IncidentIOClient


class IncidentUpdateSender:
    """Posts the announce message as an update on the notice's incident."""

    def __init__(self, client: IncidentIOClient) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"<IncidentUpdateSender {INCIDENT_UPDATE_CHANNEL}>"

    def send(self, notice: Notice, *, key: str) -> None:
        message = notice.details.get("message")
        if notice.incident is None or not isinstance(message, str) or not message.strip():
            raise NotifyRejected(
                f"{INCIDENT_UPDATE_CHANNEL}: notice {notice.event_key!r} has no incident or no "
                "message to post"
            )
        with api_outcome(f"{INCIDENT_UPDATE_CHANNEL} {notice.incident.reference}"):
            self.client.post_incident_update(
                notice.incident.id, idempotency_key=key, message=message
            )
