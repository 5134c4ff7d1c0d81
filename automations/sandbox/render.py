"""Join records with the catalog into the exact JSON shapes the schema declares."""

from __future__ import annotations

from automations.sandbox.catalog import Catalog
from automations.sandbox.model import (
    JSON,
    ORGANISATION_SLUG,
    CustomField,
    FollowUp,
    Incident,
    IncidentUpdate,
    iso,
)


def _field_values(
    custom_field: CustomField, values: tuple[str, ...], catalog: Catalog
) -> list[JSON]:
    if custom_field.is_select:
        return [{"value_option": catalog.embedded[v]} for v in values]
    key = {"text": "value_text", "link": "value_link", "numeric": "value_numeric"}
    return [{key[custom_field.field_type]: v} for v in values]


def render_incident(incident: Incident, catalog: Catalog) -> JSON:
    """IncidentV2: every role and timestamp is listed, set or not, like the real API."""
    body: JSON = {
        "id": incident.id,
        "reference": incident.reference,
        "name": incident.name,
        "incident_status": catalog.embedded[incident.status_id],
        "visibility": incident.visibility,
        "mode": incident.mode,
        "creator": incident.creator,
        "permalink": f"https://app.incident.io/{ORGANISATION_SLUG}/incidents/{incident.number}",
        "slack_team_id": incident.slack_team_id,
        "slack_channel_id": incident.slack_channel_id,
        "created_at": iso(incident.created_at),
        "updated_at": iso(incident.updated_at),
    }
    if incident.severity_id is not None:
        body["severity"] = catalog.embedded[incident.severity_id]
    if incident.type_id is not None:
        body["incident_type"] = catalog.embedded[incident.type_id]
    for key in ("summary", "call_url", "slack_channel_name", "postmortem_document_url"):
        value = getattr(incident, key)
        if value is not None:
            body[key] = value

    assignments = []
    for role in catalog.roles:
        assignment: JSON = {"role": catalog.embedded[role.id]}
        user_id = incident.roles.get(role.id)
        if user_id is not None:
            assignment["assignee"] = catalog.embedded[user_id]
        assignments.append(assignment)
    body["incident_role_assignments"] = assignments

    body["custom_field_entries"] = [
        {
            "custom_field": catalog.embedded[custom_field.id],
            "values": _field_values(custom_field, incident.custom_fields[custom_field.id], catalog),
        }
        for custom_field in catalog.custom_fields
        if incident.custom_fields.get(custom_field.id)
    ]

    timestamp_values = []
    for timestamp in catalog.timestamps:
        entry: JSON = {"incident_timestamp": catalog.embedded[timestamp.id]}
        value = incident.timestamps.get(timestamp.id)
        if value is not None:
            entry["value"] = {"value": iso(value)}
        timestamp_values.append(entry)
    body["incident_timestamp_values"] = timestamp_values
    return body


def render_update(update: IncidentUpdate, catalog: Catalog) -> JSON:
    """IncidentUpdateV2."""
    body: JSON = {
        "id": update.id,
        "incident_id": update.incident_id,
        "new_incident_status": catalog.embedded[update.status_id],
        "updater": update.updater,
        "created_at": iso(update.created_at),
    }
    if update.severity_id is not None:
        body["new_severity"] = catalog.embedded[update.severity_id]
    if update.message is not None:
        body["message"] = update.message
    return body


def render_follow_up(follow_up: FollowUp, catalog: Catalog) -> JSON:
    """FollowUpV2."""
    body: JSON = {
        "id": follow_up.id,
        "incident_id": follow_up.incident_id,
        "title": follow_up.title,
        "status": follow_up.status,
        "creator": follow_up.creator,
        "labels": list(follow_up.labels),
        "created_at": iso(follow_up.created_at),
        "updated_at": iso(follow_up.updated_at),
    }
    if follow_up.description is not None:
        body["description"] = follow_up.description
    if follow_up.assignee_id is not None:
        body["assignee"] = catalog.embedded[follow_up.assignee_id]
    if follow_up.completed_at is not None:
        body["completed_at"] = iso(follow_up.completed_at)
    return body
