"""Small builders for incidents and catalogs in pure (no I/O) tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from automations.catalog import Catalog
from automations.incidentio import (
    CustomField,
    CustomFieldOption,
    Incident,
    IncidentRole,
    IncidentStatus,
    IncidentTimestamp,
    IncidentType,
    Severity,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

SEVERITIES = (
    Severity(id="SEV1", name="Minor", rank=1),
    Severity(id="SEV2", name="Major", rank=2),
    Severity(id="SEV3", name="Critical", rank=3),
)
STATUSES = (
    IncidentStatus(id="ST-TRIAGE", name="Triage", category="triage", rank=1),
    IncidentStatus(id="ST-INV", name="Investigating", category="live", rank=2),
    IncidentStatus(id="ST-FIX", name="Fixing", category="live", rank=3),
    IncidentStatus(id="ST-DOC", name="Documenting", category="learning", rank=4),
    IncidentStatus(id="ST-CLOSED", name="Closed", category="closed", rank=5),
    IncidentStatus(id="ST-DECL", name="Declined", category="declined", rank=6),
)
ROLES = (
    IncidentRole(id="ROLE-LEAD", name="Incident Lead", shortform="lead", role_type="lead"),
    IncidentRole(id="ROLE-COMMS", name="Communications Lead", shortform="comms"),
)
TEAM = CustomField(id="CF-TEAM", name="Team", field_type="single_select")
PHASE = CustomField(id="CF-PHASE", name="Phase", field_type="single_select")
SERVICE = CustomField(id="CF-SVC", name="Affected service", field_type="text")
OPTIONS = {
    "CF-TEAM": tuple(
        CustomFieldOption(id=f"OPT-{v.upper()}", custom_field_id="CF-TEAM", value=v)
        for v in ("Payments", "Platform")
    ),
    "CF-PHASE": tuple(
        CustomFieldOption(id=f"PH-{v.upper()}", custom_field_id="CF-PHASE", value=v)
        for v in ("Triage", "Active", "Post-incident", "Closed")
    ),
}
TIMESTAMPS = (IncidentTimestamp(id="TS-IMPACT", name="Impact started", rank=1),)

CATALOG = Catalog(
    severities=SEVERITIES,
    statuses=STATUSES,
    incident_types=(IncidentType(id="TYPE-DEFAULT", name="Default", is_default=True),),
    roles=ROLES,
    custom_fields=(TEAM, PHASE, SERVICE),
    custom_field_options=OPTIONS,
    timestamps=TIMESTAMPS,
)

_counter = iter(range(1, 1_000_000))


def incident(
    *,
    age: timedelta = timedelta(hours=1),
    idle: timedelta | None = None,
    severity: str | None = "Minor",
    status: str = "Investigating",
    mode: str = "standard",
    postmortem: bool = False,
    lead: bool = False,
    fields: dict[str, str] | None = None,
    impact_started: timedelta | None = None,
    now: datetime = NOW,
) -> Incident:
    """An IncidentV2 as the API returns it, with the given age and state."""
    number = next(_counter)
    sev = CATALOG.severity(severity) if severity else None
    st = CATALOG.status(status)
    data: dict[str, Any] = {
        "id": f"01INC{number:021d}",
        "reference": f"INC-{number}",
        "name": f"Incident {number}",
        "incident_status": st.model_dump(mode="json"),
        "visibility": "public",
        "mode": mode,
        "created_at": (now - age).isoformat(),
        "updated_at": (now - (idle if idle is not None else timedelta(minutes=1))).isoformat(),
        "custom_field_entries": [],
        "incident_role_assignments": [],
        "incident_timestamp_values": [],
        "slack_team_id": "T1",
        "slack_channel_id": "",
    }
    if sev is not None:
        data["severity"] = sev.model_dump(mode="json")
    if postmortem:
        data["postmortem_document_url"] = "https://docs.example.com/pm"
    if lead:
        data["incident_role_assignments"].append(
            {"role": ROLES[0].model_dump(mode="json"), "assignee": {"id": "U1", "name": "Ada"}}
        )
    for field_name, option_value in (fields or {}).items():
        field_ = CATALOG.custom_field(field_name)
        option = CATALOG.option(field_, option_value)
        data["custom_field_entries"].append(
            {
                "custom_field": field_.model_dump(mode="json"),
                "values": [{"value_option": option.model_dump(mode="json")}],
            }
        )
    if impact_started is not None:
        data["incident_timestamp_values"].append(
            {
                "incident_timestamp": TIMESTAMPS[0].model_dump(mode="json"),
                "value": {"value": (now - impact_started).isoformat()},
            }
        )
    return Incident.model_validate(data)
