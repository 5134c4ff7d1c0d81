"""The sandbox's records and how each one renders as the API's JSON.

Records are plain dataclasses that point at each other by ID; rendering joins
them with the catalog so the stored state stays small and edits stay cheap.
Every renderer emits exactly the properties the schema declares for that
response type: the conformance checker rejects anything extra.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

CATEGORIES = ("triage", "declined", "merged", "canceled", "live", "learning", "closed", "paused")
MODES = ("standard", "retrospective", "test", "tutorial")
VISIBILITIES = ("public", "private")
FIELD_TYPES = ("single_select", "multi_select", "text", "link", "numeric")
SELECT_TYPES = ("single_select", "multi_select")
FOLLOW_UP_STATUSES = ("outstanding", "completed", "deleted", "not_doing")
FOLLOW_UP_MODES = (*MODES, "stream")  # what GET /v3/follow_ups accepts as incident_mode
SEATS = ("full_access", "viewer_only", "none")
DURATION_STATUSES = ("calculating", "invalid_timestamps", "success", "timestamps_missing")

ORGANISATION_SLUG = "sandbox"
SLACK_TEAM_ID = "T02SANDBOX1"


def iso(value: datetime) -> str:
    """RFC3339 in UTC with microseconds and a ``Z``, the form the real API emits."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class IdFactory:
    """ULID-shaped IDs (26 Crockford base32 chars) that are deterministic for a seed.

    The time part advances from a fixed base, so IDs sort in creation order like
    real ULIDs without depending on the wall clock.
    """

    def __init__(self, rng: random.Random, base_ms: int) -> None:
        self._rng = rng
        self._ms = base_ms

    def __call__(self) -> str:
        self._ms += self._rng.randint(1, 5000)
        value = (self._ms << 80) | self._rng.getrandbits(80)
        chars = []
        for _ in range(26):
            chars.append(CROCKFORD[value & 31])
            value >>= 5
        return "".join(reversed(chars))


@dataclass(frozen=True)
class Severity:
    id: str
    name: str
    description: str
    rank: int
    created_at: datetime

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "rank": self.rank,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.created_at),
        }


@dataclass(frozen=True)
class Status:
    id: str
    name: str
    description: str
    rank: int
    category: str
    created_at: datetime

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "rank": self.rank,
            "category": self.category,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.created_at),
        }


@dataclass(frozen=True)
class Team:
    """A team of the organisation: incidents' ``team_ids``, follow-ups' ``assignee_team``."""

    id: str
    name: str

    def to_json(self) -> JSON:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True)
class IncidentType:
    id: str
    name: str
    description: str
    is_default: bool
    private_incidents_only: bool
    created_at: datetime
    owning_team_ids: tuple[str, ...] = ()

    def to_json(self) -> JSON:
        """IncidentTypeV2, as embedded in incidents."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "is_default": self.is_default,
            "private_incidents_only": self.private_incidents_only,
            "create_in_triage": "optional",
            "created_at": iso(self.created_at),
            "updated_at": iso(self.created_at),
        }

    def to_v1_json(self) -> JSON:
        """IncidentTypeV1 (``/v1/incident_types``): with ``owning_team_ids`` when a team owns it."""
        body = self.to_json()
        if self.owning_team_ids:
            body["owning_team_ids"] = list(self.owning_team_ids)
        return body


@dataclass(frozen=True)
class Role:
    id: str
    name: str
    shortform: str
    description: str
    instructions: str
    role_type: str
    created_at: datetime

    def to_json(self) -> JSON:
        """IncidentRoleV2 (the catalog shape, no ``required``)."""
        return {
            "id": self.id,
            "name": self.name,
            "shortform": self.shortform,
            "description": self.description,
            "instructions": self.instructions,
            "role_type": self.role_type,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.created_at),
        }

    def to_embedded_json(self) -> JSON:
        """EmbeddedIncidentRoleV2, as it appears inside an incident."""
        return {**self.to_json(), "required": self.role_type == "lead"}


@dataclass(frozen=True)
class Option:
    id: str
    custom_field_id: str
    value: str
    sort_key: int

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "custom_field_id": self.custom_field_id,
            "value": self.value,
            "sort_key": self.sort_key,
        }


@dataclass(frozen=True)
class CustomField:
    id: str
    name: str
    description: str
    field_type: str
    options: tuple[Option, ...]
    created_at: datetime

    @property
    def is_select(self) -> bool:
        return self.field_type in SELECT_TYPES

    def option(self, option_id: str) -> Option | None:
        return next((o for o in self.options if o.id == option_id), None)

    def to_json(self) -> JSON:
        """CustomFieldV2: the catalog shape, which has no options."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "field_type": self.field_type,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.created_at),
        }

    def to_type_info_json(self) -> JSON:
        """CustomFieldTypeInfoV2, embedded in each incident's custom_field_entries."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "field_type": self.field_type,
            "options": [o.to_json() for o in self.options],
        }


@dataclass(frozen=True)
class Timestamp:
    id: str
    name: str
    rank: int

    def to_json(self) -> JSON:
        return {"id": self.id, "name": self.name, "rank": self.rank}


@dataclass(frozen=True)
class User:
    id: str
    name: str
    email: str
    slack_user_id: str
    role: str  # viewer | responder | administrator | owner
    is_active: bool = True
    on_call_seat: str = "none"  # one of SEATS
    response_seat: str = "full_access"

    def to_json(self) -> JSON:
        """UserV2, as embedded in actors and role assignments."""
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "slack_user_id": self.slack_user_id,
            "role": self.role,
        }

    def to_with_roles_json(self, base_role: JSON) -> JSON:
        """UserWithRolesV2, the /v2/users shape: with ``is_active`` and ``seats`` (section 0)."""
        return {
            **self.to_json(),
            "base_role": base_role,
            "custom_roles": [],
            "is_active": self.is_active,
            "seats": {"on_call": self.on_call_seat, "response": self.response_seat},
        }


@dataclass(frozen=True)
class DurationMetric:
    """An organisation's duration metric: the time between two incident timestamps."""

    id: str
    name: str
    from_timestamp_id: str
    to_timestamp_id: str

    def to_json(self) -> JSON:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True)
class FollowUpPriority:
    """A follow-up priority or category option: ``{id, name, rank, description}``."""

    id: str
    name: str
    rank: int
    description: str

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "name": self.name,
            "rank": self.rank,
            "description": self.description,
        }


@dataclass
class Incident:
    """One incident; catalog references are IDs so renames stay consistent."""

    id: str
    number: int
    name: str
    status_id: str
    visibility: str
    mode: str
    creator: JSON
    created_at: datetime
    updated_at: datetime
    severity_id: str | None = None
    type_id: str | None = None
    summary: str | None = None
    call_url: str | None = None
    slack_channel_id: str = ""
    slack_channel_name: str | None = None
    slack_team_id: str = SLACK_TEAM_ID
    postmortem_document_url: str | None = None
    postmortem_document_ids: tuple[str, ...] = ()
    team_ids: tuple[str, ...] = ()
    # (id, start_at, end_at) of each debrief meeting
    debriefs: tuple[tuple[str, datetime, datetime], ...] = ()
    # the last activity that does not bump updated_at (a follow-up change); None: updated_at
    last_activity_at: datetime | None = None
    # role ID -> user ID
    roles: dict[str, str] = field(default_factory=dict)
    # custom field ID -> values: option IDs for select fields, raw strings otherwise
    custom_fields: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # incident timestamp ID -> value
    timestamps: dict[str, datetime] = field(default_factory=dict)
    idempotency_key: str | None = None

    @property
    def reference(self) -> str:
        return f"INC-{self.number}"

    @property
    def last_activity(self) -> datetime:
        """IncidentV2 ``last_activity_at``: an update, an edit or a follow-up change."""
        if self.last_activity_at is None:
            return self.updated_at
        return max(self.updated_at, self.last_activity_at)


@dataclass
class IncidentUpdate:
    id: str
    incident_id: str
    status_id: str
    updater: JSON
    created_at: datetime
    severity_id: str | None = None
    message: str | None = None


@dataclass
class FollowUp:
    id: str
    incident_id: str
    title: str
    status: str
    creator: JSON
    created_at: datetime
    updated_at: datetime
    assignee_id: str | None = None
    completed_at: datetime | None = None
    description: str | None = None
    labels: tuple[str, ...] = ()
    assignee_team_id: str | None = None
    priority_id: str | None = None
    category_id: str | None = None
    # the linked ticket: {issue_name, issue_permalink, provider}
    external_issue: JSON | None = None


def api_key_actor(key_id: str) -> JSON:
    """The ActorV2 used for anything done through the API key."""
    return {"api_key": {"id": key_id, "name": "Sandbox API key"}}


def user_actor(user: User) -> JSON:
    return {"user": user.to_json()}
