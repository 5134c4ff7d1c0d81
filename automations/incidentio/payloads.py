"""What the client sends: strict request bodies for create and edit.

``extra="forbid"`` makes a typo fail before a request is sent, and ``None``
means "not sent" (the API has no nulls), so a body only carries what was set.
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from automations.incidentio.models import IncidentMode, UTCDateTime, Visibility


class _Payload(BaseModel):
    """Strict request bodies; ``None`` means 'not sent' because the API has no nulls."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_serializer(mode="wrap")
    def _drop_none(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class CustomFieldValuePayload(_Payload):
    value_option_id: str | None = None
    value_text: str | None = None
    value_link: str | None = None
    value_numeric: str | None = None
    value_catalog_entry_id: str | None = None
    value_timestamp: str | None = None


class CustomFieldEntryPayload(_Payload):
    """Set a custom field; ``values=()`` unsets it."""

    custom_field_id: str
    values: tuple[CustomFieldValuePayload, ...] = ()

    @classmethod
    def options(cls, custom_field_id: str, *option_ids: str) -> CustomFieldEntryPayload:
        """A select field set to these options (none: unset)."""
        values = tuple(CustomFieldValuePayload(value_option_id=o) for o in option_ids)
        return cls(custom_field_id=custom_field_id, values=values)


class UserReference(_Payload):
    id: str | None = None
    email: str | None = None
    slack_user_id: str | None = None


class IncidentRoleAssignmentPayload(_Payload):
    """Assign a role; no assignee unassigns it."""

    incident_role_id: str
    assignee: UserReference | None = None


class IncidentTimestampValuePayload(_Payload):
    """Set a timestamp; no value unsets it."""

    incident_timestamp_id: str
    value: UTCDateTime | None = None


class IncidentEdit(_Payload):
    """The ``incident`` object of an edit: only fields that were set are sent.

    The API edits only what it receives, so the body is built with
    ``exclude_unset``; ``payload()`` is the exact JSON object.
    """

    name: str | None = None
    summary: str | None = None
    severity_id: str | None = None
    incident_status_id: str | None = None
    call_url: str | None = None
    slack_channel_name_override: str | None = None
    custom_field_entries: tuple[CustomFieldEntryPayload, ...] | None = None
    incident_role_assignments: tuple[IncidentRoleAssignmentPayload, ...] | None = None
    incident_timestamp_values: tuple[IncidentTimestampValuePayload, ...] | None = None

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class RetrospectiveIncidentOptions(_Payload):
    external_id: int | None = None
    postmortem_document_url: str | None = None
    slack_channel_id: str | None = None


class IncidentCreate(_Payload):
    """The body of ``POST /v2/incidents``; the idempotency key makes a retried create safe."""

    idempotency_key: str
    visibility: Visibility
    name: str | None = None
    summary: str | None = None
    severity_id: str | None = None
    incident_status_id: str | None = None
    incident_type_id: str | None = None
    mode: IncidentMode | None = None
    custom_field_entries: tuple[CustomFieldEntryPayload, ...] | None = None
    incident_role_assignments: tuple[IncidentRoleAssignmentPayload, ...] | None = None
    incident_timestamp_values: tuple[IncidentTimestampValuePayload, ...] | None = None
    retrospective_incident_options: RetrospectiveIncidentOptions | None = None
    slack_channel_name_override: str | None = None
    slack_team_id: str | None = None

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


# --- incident updates and escalations (bodies with an idempotency key) -----------


class IncidentUpdateCreate(_Payload):
    """The body of ``POST /v2/incident_updates``: a message and/or a status or severity move."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # built on first use

    idempotency_key: str
    incident_id: str
    message: str | None = None
    to_incident_status_id: str | None = None
    to_severity_id: str | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> IncidentUpdateCreate:
        if not self.idempotency_key.strip():
            raise ValueError("idempotency_key must not be empty")
        if not (self.message or self.to_incident_status_id or self.to_severity_id):
            raise ValueError("an incident update needs a message, a status or a severity")
        return self

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class EscalationCreate(_Payload):
    """The body of ``POST /v2/escalations``: page a path or named users, never both."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # built on first use

    idempotency_key: str
    title: str
    escalation_path_id: str | None = None
    user_ids: tuple[str, ...] | None = None
    description: str | None = None
    incident_id: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> EscalationCreate:
        if not self.idempotency_key.strip() or not self.title.strip():
            raise ValueError("idempotency_key and title must not be empty")
        if (self.escalation_path_id is None) == (self.user_ids is None):
            raise ValueError("give exactly one of escalation_path_id or user_ids")
        if self.user_ids is not None and not self.user_ids:
            raise ValueError("user_ids must name at least one user")
        return self

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
