"""Join records with the catalog into the exact JSON shapes the schema declares."""

from __future__ import annotations

from automations.sandbox.catalog import Catalog
from automations.sandbox.model import (
    JSON,
    ORGANISATION_SLUG,
    CustomField,
    DurationMetric,
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


def _duration(metric: DurationMetric, incident: Incident) -> JSON:
    """IncidentDurationMetricWithValueV2: the seconds between its two timestamps, or why not."""
    start = incident.timestamps.get(metric.from_timestamp_id)
    end = incident.timestamps.get(metric.to_timestamp_id)
    body: JSON = {"duration_metric": metric.to_json()}
    if start is None or end is None:
        body["status"] = "timestamps_missing"
    elif end < start:
        body["status"] = "invalid_timestamps"
    else:
        body["status"] = "success"
        body["value_seconds"] = int((end - start).total_seconds())
    return body


def render_incident(incident: Incident, catalog: Catalog) -> JSON:
    """IncidentV2: every role and timestamp is listed, set or not, like the real API.

    Every key section 0 marks as always sent is here (``last_activity_at``,
    ``team_ids``, each duration metric's ``status``); an absent optional value
    is left out, never sent as null.
    """
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
        "last_activity_at": iso(incident.last_activity),
        "team_ids": list(incident.team_ids),
        "duration_metrics": [_duration(m, incident) for m in catalog.duration_metrics],
    }
    if incident.slack_channel_id:
        body["slack_channel_url"] = (
            f"https://{ORGANISATION_SLUG}.slack.com/archives/{incident.slack_channel_id}"
        )
    if incident.postmortem_document_ids:
        body["postmortem_document_ids"] = list(incident.postmortem_document_ids)
    if incident.debriefs:
        body["debriefs"] = [
            {"id": ident, "start_at": iso(start), "end_at": iso(end)}
            for ident, start, end in incident.debriefs
        ]
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
    """FollowUpV2 (``/v2/follow_ups``, removed on 2026-12-31)."""
    body = _follow_up_common(follow_up, catalog)
    if follow_up.priority_id is not None:
        body["priority"] = catalog.follow_up_option_by_id[follow_up.priority_id].to_json()
    return body


def render_follow_up_v3(follow_up: FollowUp, catalog: Catalog) -> JSON:
    """FollowUpV3 (``/v3/follow_ups``): v2's keys plus the team and category."""
    body = render_follow_up(follow_up, catalog)
    if follow_up.assignee_team_id is not None:
        body["assignee_team"] = catalog.team_by_id[follow_up.assignee_team_id].to_json()
    if follow_up.category_id is not None:
        body["category"] = catalog.follow_up_option_by_id[follow_up.category_id].to_json()
    return body


def _follow_up_common(follow_up: FollowUp, catalog: Catalog) -> JSON:
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
    if follow_up.external_issue is not None:
        body["external_issue_reference"] = dict(follow_up.external_issue)
    return body
