"""Section 0's on-call, escalation and incident-update shapes, where the stored schema is older.

The stored OpenAPI file (2026-01) has ``GET /v2/schedules``, ``/v2/schedules/{id}``,
``/v2/schedule_entries`` and ``POST /v2/escalations``, but not the keys section 0
adds to them (``permalink``, ``next_shifts``, ``kind``, ``current_responders``,
the escalation's ``description`` and the newer statuses), and it lacks
``GET /v2/escalation_paths`` and ``POST /v2/incident_updates`` altogether.
``newer(openapi)`` is the same schema with those added from section 0 (and the
official SDK 2.29 it comes from), still strict: a key in neither fails.

``SECTION0`` is section 0's field lists as a table, one row per object;
``check_section0`` checks a response object against its row: every required
key present and not null, no optional key sent as null, enum values known.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tests.openapi_conformance import Conformance, load_spec

ESCALATION_STATUSES = (
    "pending", "triggered", "acked", "resolved", "expired",
    "cancelled", "delayed", "pending_repeat", "snoozed",
)  # fmt: skip


@dataclass(frozen=True)
class Row:
    """One object of section 0: the keys always sent, the optional ones, the enums."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    enums: tuple[tuple[str, tuple[str, ...]], ...] = ()


SECTION0: dict[str, Row] = {
    "ScheduleV2": Row(
        ("id", "name", "timezone", "permalink", "annotations", "team_ids",
         "created_at", "updated_at"),
        ("config", "current_shifts", "next_shifts", "holidays_public_config"),
    ),
    "ScheduleEntryV2": Row(
        ("start_at", "end_at"),
        ("entry_id", "fingerprint", "rotation_id", "layer_id", "user"),
    ),
    "ScheduleEntriesListResult": Row(("schedule_entries",), ("pagination_meta",)),
    "ScheduleEntries": Row(("scheduled", "overrides", "final")),
    "AfterPaginationMeta": Row(("after", "after_url")),
    "EscalationPathV2": Row(
        ("id", "name", "path", "kind", "team_ids"),
        ("current_responders", "working_hours", "repeat_config", "template_id",
         "param_bindings"),
        (("kind", ("standalone", "templated")),),
    ),
    "EscalationV2": Row(
        ("id", "title", "status", "description", "priority", "creator", "events",
         "related_incidents", "related_alerts", "created_at", "updated_at"),
        ("escalation_path_id",),
        (("status", ESCALATION_STATUSES),),
    ),
    "IncidentUpdateV2": Row(
        ("id", "incident_id", "new_incident_status", "updater", "created_at"),
        ("message", "new_severity", "merged_into_incident_id"),
    ),
}  # fmt: skip


def nulls(value: Any, where: str = "") -> list[str]:
    """Every place in a JSON value that holds ``null``."""
    if value is None:
        return [where or "<root>"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in nulls(v, f"{where}/{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in nulls(v, f"{where}/{i}")]
    return []


def check_section0(kind: str, obj: dict[str, Any]) -> None:
    """``obj`` carries every key of its row, sends no null anywhere and known enum values."""
    row = SECTION0[kind]
    missing = [key for key in row.required if key not in obj]
    assert not missing, f"{kind} lacks {missing}"
    assert not nulls(obj), f"{kind} sends null at {nulls(obj)}"
    unknown = sorted(set(obj) - set(row.required) - set(row.optional))
    assert not unknown, f"{kind} sends keys section 0 does not list: {unknown}"
    for key, allowed in row.enums:
        assert obj[key] in allowed, f"{kind}.{key} = {obj[key]!r}, not one of {allowed}"


def check_all(kind: str, objects: Iterable[dict[str, Any]]) -> None:
    for obj in objects:
        check_section0(kind, obj)


# --- the stored schema brought up to section 0 --------------------------------------

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _strict(properties: dict[str, Any], required: Iterable[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"in": "query", "name": name, "schema": schema}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _patch(spec: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    schemas = spec["components"]["schemas"]
    string = {"type": "string"}

    schedule = schemas["ScheduleV2"]
    schedule["properties"]["permalink"] = string
    schedule["properties"]["next_shifts"] = {"type": "array", "items": _ref("ScheduleEntryV2")}
    schedule["required"] = list(SECTION0["ScheduleV2"].required)

    path = schemas["EscalationPathV2"]
    path["properties"]["kind"] = {"type": "string", "enum": ["standalone", "templated"]}
    path["properties"]["current_responders"] = {"type": "array", "items": _ref("UserV2")}
    path["required"] = list(SECTION0["EscalationPathV2"].required)

    escalation = schemas["EscalationV2"]
    escalation["properties"]["description"] = string
    escalation["properties"]["status"]["enum"] = list(ESCALATION_STATUSES)
    escalation["required"] = list(SECTION0["EscalationV2"].required)

    create = schemas["EscalationsCreatePayloadV2"]
    create["properties"]["description"] = string
    create["properties"]["incident_id"] = string

    schemas["IncidentUpdatesCreatePayloadV2"] = _strict(
        {
            "idempotency_key": string,
            "incident_id": string,
            "message": string,
            "to_incident_status_id": string,
            "to_severity_id": string,
        },
        ("idempotency_key", "incident_id"),
    )
    schemas["EscalationsListPathsResultV2"] = _strict(
        {
            "escalation_paths": {"type": "array", "items": _ref("EscalationPathV2")},
            "pagination_meta": _ref("PaginationMetaResultV2"),
        },
        ("escalation_paths", "pagination_meta"),
    )
    spec["paths"]["/v2/escalation_paths"]["get"] = {
        "parameters": [
            _query("page_size", {"type": "integer", "minimum": 1, "maximum": 25}),
            _query("after", string),
        ],
        "responses": {"200": _json(_ref("EscalationsListPathsResultV2"))},
    }
    spec["paths"]["/v2/incident_updates"]["post"] = {
        "requestBody": {"required": True, **_json(_ref("IncidentUpdatesCreatePayloadV2"))},
        "responses": {
            "201": _json(
                _strict({"incident_update": _ref("IncidentUpdateV2")}, ["incident_update"])
            )
        },
    }
    spec["paths"]["/v2/users"]["get"]["parameters"].append(
        _query("include_inactive", {"type": "string", "enum": ["true", "false"]})
    )
    return spec


@functools.cache
def _newer() -> Conformance:
    return Conformance(_patch(load_spec()))


def newer(openapi: Conformance) -> Conformance:
    """The stored schema with section 0's on-call, escalation and incident-update additions.

    Takes the ``openapi`` fixture so a test without the schema file skips as the others do.
    """
    assert openapi.spec is load_spec()
    return _newer()
