"""Check requests and responses against the real incident.io OpenAPI 3 schema.

The schema lives outside the repository (``../shared/incident-io-openapi3.json``
or the path in ``INCIDENT_IO_OPENAPI``); tests that need it skip with a clear
reason when it is absent.

Two deliberate adjustments, both from docs/incident-io-api.md:

- ``required`` lists name hidden attributes (external_id, organisation_id, ...)
  that are not in ``properties`` and are never emitted; only the intersection of
  the two lists is required (section 3).
- Objects with declared ``properties`` and no ``additionalProperties`` are
  checked strictly, so a field the real API does not have fails the test
  instead of slipping through. The schema uses no allOf/oneOf, so this is safe.

Query strings use the bracketed deepObject form (section 4), which OpenAPI's
default ``form`` style cannot describe, so they are decoded here and each
parameter's value is validated against its own schema.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openapi_schema_validator import OAS30Validator

SPEC_ENV = "INCIDENT_IO_OPENAPI"
DEFAULT_SPEC = Path(__file__).resolve().parents[1].parent / "shared" / "incident-io-openapi3.json"

# Parameters newer than the stored schema that the real API accepts (section 4).
NEWER_QUERY_PARAMS: dict[str, dict[str, Any]] = {
    "/v2/incidents": {
        "sort_by": {
            "type": "string",
            "enum": ["created_at_newest_first", "created_at_oldest_first"],
        },
        "filter_mode": {"type": "string", "enum": ["all", "any"]},
    },
    "/v2/users": {"include_inactive": {"type": "string", "enum": ["true", "false"]}},
}

# The error envelope (section 6); the stored schema documents success codes only.
ERROR_ENVELOPE: dict[str, Any] = {
    "type": "object",
    "required": ["type", "status", "request_id", "errors"],
    "properties": {
        "type": {"type": "string"},
        "status": {"type": "integer"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "source": {
                        "type": "object",
                        "required": [
                            "field",
                            "pointer",
                        ],  # both, when there is a source (section 0)
                        "properties": {"field": {"type": "string"}, "pointer": {"type": "string"}},
                        "additionalProperties": False,
                    },
                    "metadata": {"type": "object"},
                },
                "additionalProperties": False,
            },
        },
        "rate_limit": {
            "type": "object",
            "required": ["name", "limit", "remaining", "retry_after"],
            "properties": {
                "name": {"type": "string"},
                "limit": {"type": "integer"},
                "remaining": {"type": "integer"},
                "retry_after": {"type": "string", "format": "date-time"},
            },
        },
        "debug": {"type": "object"},
    },
    "additionalProperties": False,
}


# --- Section 0 of docs/incident-io-api.md: what the live API sends today --------------------------
# The stored schema predates these; each is added to it (``load_spec``) so the sandbox is held
# to what the live API sends. Properties are checked strictly like the rest; "required" keys
# must be present. Add rows here for newer routes and objects.

_STRING: dict[str, Any] = {"type": "string"}
ESCALATION_STATUSES = (
    "pending", "triggered", "acked", "resolved", "expired",
    "cancelled", "delayed", "pending_repeat", "snoozed",
)  # fmt: skip
_DATETIME: dict[str, Any] = {"type": "string", "format": "date-time"}
_IDS: dict[str, Any] = {"type": "array", "items": _STRING}
_REF = "#/components/schemas/"
_SEAT: dict[str, Any] = {"type": "string", "enum": ["full_access", "viewer_only", "none"]}
_RANKED: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "rank"],
    "properties": {
        "id": _STRING,
        "name": _STRING,
        "rank": {"type": "integer"},
        "description": _STRING,
    },
    "additionalProperties": False,
}
_TIME_FILTER: dict[str, Any] = {
    "type": "object",
    "properties": {op: {"type": "array", "items": _STRING} for op in ("gte", "lte", "date_range")},
    "additionalProperties": False,
}

# schema name -> (properties added, keys made required)
SECTION_0_SCHEMAS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "IncidentV2": (
        {
            "last_activity_at": _DATETIME,
            "team_ids": _IDS,
            "debriefs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "start_at", "end_at"],
                    "properties": {"id": _STRING, "start_at": _DATETIME, "end_at": _DATETIME},
                    "additionalProperties": False,
                },
            },
            "slack_channel_url": _STRING,
            "ms_teams_channel_url": _STRING,
            "postmortem_document_ids": _IDS,
        },
        ("last_activity_at", "team_ids"),
    ),
    "UserWithRolesV2": (
        {
            "is_active": {"type": "boolean"},
            "seats": {
                "type": "object",
                "required": ["on_call", "response"],
                "properties": {"on_call": _SEAT, "response": _SEAT},
                "additionalProperties": False,
            },
        },
        ("is_active", "seats"),
    ),
    "IncidentDurationMetricWithValueV2": (
        {
            "status": {
                "type": "string",
                "enum": ["calculating", "invalid_timestamps", "success", "timestamps_missing"],
            }
        },
        ("status",),
    ),
    "IncidentTypeV1": ({"owning_team_ids": _IDS}, ()),
    "CustomFieldV2": (
        {
            "fixed_filter": {
                "type": "object",
                "required": ["catalog_attribute_id", "values"],
                "properties": {"catalog_attribute_id": _STRING, "values": _IDS},
                "additionalProperties": False,
            }
        },
        (),
    ),
    "IncidentRoleV2": ({}, ("instructions", "shortform")),
    "FollowUpV3": (
        {
            "id": _STRING,
            "incident_id": _STRING,
            "title": _STRING,
            "status": {
                "type": "string",
                "enum": ["outstanding", "completed", "not_doing", "deleted"],
            },
            "labels": {"type": "array", "items": _STRING},
            "creator": {"$ref": _REF + "ActorV2"},
            "created_at": _DATETIME,
            "updated_at": _DATETIME,
            "completed_at": _DATETIME,
            "description": _STRING,
            "assignee": {"$ref": _REF + "UserV2"},
            "assignee_team": {
                "type": "object",
                "required": ["id", "name"],
                "properties": {"id": _STRING, "name": _STRING},
                "additionalProperties": False,
            },
            "category": _RANKED,
            "priority": _RANKED,
            "external_issue_reference": {"$ref": _REF + "ExternalIssueReferenceV2"},
        },
        ("id", "incident_id", "title", "status", "labels", "creator", "created_at", "updated_at"),
    ),
    "FollowUpsListResultV3": (
        {
            "follow_ups": {"type": "array", "items": {"$ref": _REF + "FollowUpV3"}},
            "pagination_meta": {
                "type": "object",
                "required": ["page_size"],
                "properties": {"page_size": {"type": "integer", "maximum": 250}, "after": _STRING},
                "additionalProperties": False,
            },
        },
        ("follow_ups", "pagination_meta"),
    ),
    "FollowUpsShowResultV3": ({"follow_up": {"$ref": _REF + "FollowUpV3"}}, ("follow_up",)),
    # on-call, escalations and incident updates (the stored schema has some of the routes)
    "ScheduleV2": (
        {
            "permalink": _STRING,
            "next_shifts": {"type": "array", "items": {"$ref": _REF + "ScheduleEntryV2"}},
        },
        ("permalink",),
    ),
    "EscalationPathV2": (
        {
            "kind": {"type": "string", "enum": ["standalone", "templated"]},
            "current_responders": {"type": "array", "items": {"$ref": _REF + "UserV2"}},
        },
        ("kind",),
    ),
    "EscalationsListPathsResultV2": (
        {
            "escalation_paths": {"type": "array", "items": {"$ref": _REF + "EscalationPathV2"}},
            "pagination_meta": {"$ref": _REF + "PaginationMetaResultV2"},
        },
        ("escalation_paths", "pagination_meta"),
    ),
    "EscalationV2": (
        {
            "description": _STRING,  # required by the SDK that section 0 comes from
            "status": {"type": "string", "enum": list(ESCALATION_STATUSES)},
        },
        ("description",),
    ),
    "EscalationsCreatePayloadV2": ({"description": _STRING, "incident_id": _STRING}, ()),
    "IncidentUpdatesCreatePayloadV2": (
        {
            "idempotency_key": _STRING,
            "incident_id": _STRING,
            "message": _STRING,
            "to_incident_status_id": _STRING,
            "to_severity_id": _STRING,
        },
        ("idempotency_key", "incident_id"),
    ),
    "IncidentUpdatesCreateResultV2": (
        {"incident_update": {"$ref": _REF + "IncidentUpdateV2"}},
        ("incident_update",),
    ),
}


# A webhook's incident is IncidentV2 plus two keys, so it carries the same newer keys.
SECTION_0_SCHEMAS["WebhookIncidentV2"] = SECTION_0_SCHEMAS["IncidentV2"]


def _get(result: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    content = {"application/json": {"schema": {"$ref": _REF + result}}}
    return {"get": {"parameters": parameters, "responses": {"200": {"content": content}}}}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"in": "query", "name": name, "schema": schema}


def _post(payload: str, status: str, result: str) -> dict[str, Any]:
    body = {"required": True, "content": {"application/json": {"schema": {"$ref": _REF + payload}}}}
    content = {"application/json": {"schema": {"$ref": _REF + result}}}
    return {"post": {"requestBody": body, "responses": {status: {"content": content}}}}


# path -> operations added (merged into the path's existing ones)
SECTION_0_PATHS: dict[str, dict[str, Any]] = {
    "/v3/follow_ups": _get(
        "FollowUpsListResultV3",
        [
            _query("page_size", {"type": "integer", "minimum": 1, "maximum": 250}),
            _query("after", _STRING),
            _query("incident_id", _STRING),
            _query(
                "incident_mode",
                {
                    "type": "string",
                    "enum": ["standard", "retrospective", "test", "tutorial", "stream"],
                },
            ),
            _query("assignee_team_id", _STRING),
            _query("created_at", _TIME_FILTER),
            _query("updated_at", _TIME_FILTER),
        ],
    ),
    "/v3/follow_ups/{id}": _get(
        "FollowUpsShowResultV3", [{"in": "path", "name": "id", "required": True, "schema": _STRING}]
    ),
    "/v2/escalation_paths": _get(
        "EscalationsListPathsResultV2",
        [
            _query("page_size", {"type": "integer", "minimum": 1, "maximum": 25}),
            _query("after", _STRING),
        ],
    ),
    "/v2/incident_updates": _post(
        "IncidentUpdatesCreatePayloadV2", "201", "IncidentUpdatesCreateResultV2"
    ),
}


def add_section_0(spec: dict[str, Any]) -> None:
    """Bring the stored schema up to what the live API sends (section 0), in place."""
    schemas = spec["components"]["schemas"]
    for name, (properties, required) in SECTION_0_SCHEMAS.items():
        schema = schemas.setdefault(
            name, {"type": "object", "properties": {}, "additionalProperties": False}
        )
        schema["properties"].update(properties)
        schema["required"] = sorted({*schema.get("required", ()), *required})
    for path, operations in SECTION_0_PATHS.items():
        spec["paths"].setdefault(path, {}).update(operations)


class SpecMissing(RuntimeError):
    """The OpenAPI schema file is not where tests look for it."""


def spec_path() -> Path:
    return Path(os.environ.get(SPEC_ENV) or DEFAULT_SPEC)


def _tighten(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {k: _tighten(v) for k, v in schema.items()}
        props = out.get("properties")
        if isinstance(props, dict):
            if "required" in out:
                out["required"] = [r for r in out["required"] if r in props]
                if not out["required"]:
                    del out["required"]
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [_tighten(v) for v in schema]
    return schema


@functools.cache
def load_spec() -> dict[str, Any]:
    path = spec_path()
    if not path.is_file():
        raise SpecMissing(
            f"incident.io OpenAPI schema not found at {path}; put it in ../shared/ "
            f"or set {SPEC_ENV} to its path"
        )
    raw = json.loads(path.read_text())
    spec = copy.deepcopy(raw)
    spec["components"]["schemas"] = _tighten(spec["components"]["schemas"])
    add_section_0(spec)
    return spec  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    spec: dict[str, Any]


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


class Conformance:
    """Validates bodies and query strings for the routes of one spec."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self._routes: list[tuple[re.Pattern[str], str]] = sorted(
            ((_template_regex(t), t) for t in spec["paths"]),
            key=lambda item: item[1].count("{"),  # literal segments win over {id}
        )

    def operation(self, method: str, path: str) -> Operation:
        for regex, template in self._routes:
            if regex.match(path):
                ops = self.spec["paths"][template]
                if method.lower() in ops:
                    return Operation(method.upper(), template, ops[method.lower()])
        raise AssertionError(f"{method} {path} is not a route of the incident.io API")

    def _validator(self, schema: dict[str, Any]) -> OAS30Validator:
        wrapped = {**schema, "components": self.spec["components"]}
        return OAS30Validator(wrapped)

    def _check(self, schema: dict[str, Any], value: Any, what: str) -> None:
        errors = sorted(self._validator(schema).iter_errors(value), key=lambda e: list(e.path))
        if errors:
            lines = [
                f"- {'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors[:10]
            ]
            raise AssertionError(f"{what} does not match the schema:\n" + "\n".join(lines))

    def validate_response(self, method: str, path: str, status: int, body: Any) -> None:
        op = self.operation(method, path)
        what = f"response {status} to {op.method} {op.template}"
        if status >= 400:
            self._check(ERROR_ENVELOPE, body, what)
            return
        responses = op.spec["responses"]
        assert str(status) in responses, f"{what}: the schema documents only {list(responses)}"
        schema = responses[str(status)]["content"]["application/json"]["schema"]
        self._check(schema, body, what)

    def validate_webhook(self, body: Any) -> None:
        """A webhook body against its event's schema (the schema's ``x-webhooks``)."""
        event_type = body.get("event_type") if isinstance(body, dict) else None
        operation = self.spec["x-webhooks"].get(f"/x-webhooks/{event_type}")
        assert operation is not None, f"{event_type!r} is not an incident.io webhook event"
        content = operation["get"]["responses"]["200"]["content"]["application/json"]
        self._check(content["schema"], body, f"webhook {event_type}")
        assert set(body) == {"event_type", event_type}, f"webhook {event_type}: keys {set(body)}"

    def validate_request(
        self,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]] = (),
        body: Any = None,
    ) -> None:
        op = self.operation(method, path)
        what = f"request {op.method} {op.template}"
        params = {p["name"]: p for p in op.spec.get("parameters", []) if p["in"] == "query"}
        extra = NEWER_QUERY_PARAMS.get(op.template, {})
        for name, value in decode_deep_object(query).items():
            if name in params:
                schema = params[name]["schema"]
            elif name in extra:
                schema = extra[name]
            else:
                raise AssertionError(f"{what}: unknown query parameter {name!r}")
            self._check(schema, _coerce(schema, value), f"{what} parameter {name}")
        request_body = op.spec.get("requestBody")
        if request_body is None:
            assert body is None, f"{what} takes no body"
            return
        if request_body.get("required"):
            assert body is not None, f"{what} requires a body"
        if body is not None:
            schema = request_body["content"]["application/json"]["schema"]
            self._check(schema, body, f"{what} body")


_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def decode_deep_object(query: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``a[b][c]=v`` pairs to ``{"a": {"b": {"c": [v, ...]}}}``; plain keys stay scalar."""
    out: dict[str, Any] = {}
    for key, value in query:
        match = _KEY.match(key)
        if not match:
            raise AssertionError(f"malformed query key {key!r}")
        name, brackets = match.group(1), re.findall(r"\[([^\[\]]*)\]", match.group(2))
        if not brackets:
            if name in out:
                raise AssertionError(f"query key {name!r} repeated")
            out[name] = value
            continue
        node = out.setdefault(name, {})
        for part in brackets[:-1]:
            node = node.setdefault(part, {})
        node.setdefault(brackets[-1], []).append(value)
    return out


def _coerce(schema: dict[str, Any], value: Any) -> Any:
    if schema.get("type") == "integer" and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return value
    return value
