"""What a notification says: one applied action (or a notice) on one incident.

A ``Notice`` is stored in the ledger's notification outbox as JSON when its
action is recorded as applied, and rendered by each channel at send time. It
carries only what a person needs to act (reference, name, link, severity,
status, reason) and is built from the incident as re-read after the action,
so a notification says what is true now, not what the poll saw.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from automations.text import NAME_LIMIT, REASON_LIMIT, one_line

if TYPE_CHECKING:  # the ledger decodes notices: `history` need not import the API models
    from automations.incidentio import Incident

# Notice.type values (the webhook body's "type").
ACTION_APPLIED = "action.applied"  # a rule's edit landed (or was reconciled as landed)
NOTICE = "incident.notice"  # a notice rule's condition held long enough
SUMMARY = "notifications.held_back"  # the channel's max_per_hour held some back
TEST = "notifications.test"  # `automations notify test CHANNEL`


@dataclass(frozen=True)
class IncidentSummary:
    """The incident as a notification shows it; ``private`` decides who may see it at all."""

    id: str
    reference: str
    name: str
    permalink: str | None
    severity: str | None
    status: str
    private: bool

    @classmethod
    def of(cls, incident: Incident) -> IncidentSummary:
        return cls(
            id=incident.id,
            reference=one_line(incident.reference, NAME_LIMIT),
            name=one_line(incident.name, NAME_LIMIT),
            permalink=incident.permalink,
            severity=one_line(incident.severity.name) if incident.severity else None,
            status=one_line(incident.incident_status.name),
            private=incident.is_private,
        )

    def public_fields(self) -> dict[str, Any]:
        """What a receiver gets: everything but the routing flag."""
        return {
            "id": self.id,
            "reference": self.reference,
            "name": self.name,
            "permalink": self.permalink,
            "severity": self.severity,
            "status": self.status,
        }


@dataclass(frozen=True)
class Notice:
    """One notification's content, the same for every channel it goes to.

    ``event_key`` is the action's ledger key: the webhook-id and the idempotency key,
    so a retry is recognisably the same notification.
    """

    event_key: str
    type: str
    rule: str
    action: str  # the action kind: "escalate", "sync_status", "notice", ...
    reason: str
    occurred_at: datetime
    incident: IncidentSummary | None = None  # None only for SUMMARY
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", one_line(self.reason, REASON_LIMIT))

    @property
    def private(self) -> bool:
        return self.incident is not None and self.incident.private

    def webhook_body(self) -> dict[str, Any]:
        """The JSON a webhook receiver gets (README "Channels" documents it)."""
        data: dict[str, Any] = {
            "rule": self.rule,
            "incident": self.incident.public_fields() if self.incident else None,
            "action": self.action,
            "reason": self.reason,
        }
        if self.details:
            data["details"] = self.details
        return {"type": self.type, "timestamp": self.occurred_at.isoformat(), "data": data}

    def to_json(self) -> str:
        record = asdict(self)
        record["occurred_at"] = self.occurred_at.isoformat()
        return json.dumps(record, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Notice:
        record = json.loads(text)
        incident = record.pop("incident")
        return cls(
            **{**record, "occurred_at": datetime.fromisoformat(record["occurred_at"])},
            incident=IncidentSummary(**incident) if incident else None,
        )
