"""The strict response check: every sandbox response carries what the live API always sends.

Generated clients of the live API raise on a missing required key and crash on
a ``null`` object (docs/incident-io-api.md section 0), so a program tested against a
sandbox that omits one can still break on the real service. This check is a
table, independent of the stored OpenAPI schema (which predates section 0):

- ``REQUIRED``: one row per object type, with its required keys, their types and
  enum values, and its optional keys (any other key is an error: the sandbox
  sends only real ones);
- ``ROUTES``: the object each route's success body is (every error is ``ErrorV2``);
- ``WALKS``: what exercises the routes, on the seeded data and again after
  mutations (an edit, a created incident, follow-up changes).

Every response of every route the sandbox serves is checked recursively, and
``null`` is refused everywhere. To cover a new route: add rows for its objects
to ``REQUIRED``, its success body to ``ROUTES`` and a walk to ``WALKS``; the
coverage assertion fails until all three are there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from automations.sandbox import SandboxThread
from automations.sandbox.follow_ups import V2_REMOVED_AT
from tests.openapi_conformance import ESCALATION_STATUSES
from tests.sandbox_server import SandboxControl

# --- the value types -------------------------------------------------------------------------


@dataclass(frozen=True)
class Scalar:
    """A JSON string, integer, number or boolean (bool is never an integer here)."""

    kind: str  # "string" | "integer" | "number" | "boolean" | "datetime"


@dataclass(frozen=True)
class Enum:
    values: frozenset[str]

    def __init__(self, *values: str) -> None:
        object.__setattr__(self, "values", frozenset(values))


@dataclass(frozen=True)
class Obj:
    """An object described by the row ``name`` of ``REQUIRED``."""

    name: str


@dataclass(frozen=True)
class ListOf:
    item: Type


@dataclass(frozen=True)
class AnyObject:
    """An object whose keys the API does not fix (metadata, annotations)."""


Type = Scalar | Enum | Obj | ListOf | AnyObject

STR, INT, NUM, BOOL, TIME = (
    Scalar("string"),
    Scalar("integer"),
    Scalar("number"),
    Scalar("boolean"),
    Scalar("datetime"),
)
IDS = ListOf(STR)


@dataclass(frozen=True)
class ObjectSpec:
    required: Mapping[str, Type]
    optional: Mapping[str, Type] = field(default_factory=dict)


def _with(base: ObjectSpec, must: Mapping[str, Type] | None = None, **optional: Type) -> ObjectSpec:
    """``base`` plus more required keys (``must``) and optional ones: a wider shape of it."""
    return ObjectSpec({**base.required, **(must or {})}, {**base.optional, **optional})


# --- the table: one row per object type ------------------------------------------------------

CATEGORIES = Enum(
    "triage", "declined", "merged", "canceled", "live", "learning", "closed", "paused"
)  # fmt: skip
SEAT = Enum("full_access", "viewer_only", "none")
PROVIDERS = Enum(
    "asana", "azure_devops", "click_up", "linear", "jira", "jira_server", "github", "gitlab",
    "service_now", "shortcut",
)  # fmt: skip
FOLLOW_UP_STATUS = Enum("outstanding", "completed", "not_doing", "deleted")
STAMPED = {"created_at": TIME, "updated_at": TIME}

_SEVERITY = ObjectSpec({"id": STR, "name": STR, "description": STR, "rank": INT, **STAMPED})
_ROLE = ObjectSpec(
    {
        "id": STR,
        "name": STR,
        "shortform": STR,  # section 0: always sent, "" when empty
        "description": STR,
        "instructions": STR,  # section 0: always sent, "" when empty
        "role_type": Enum("lead", "reporter", "custom"),
        **STAMPED,
    }
)
_TYPE = ObjectSpec(
    {
        "id": STR,
        "name": STR,
        "description": STR,
        "is_default": BOOL,
        "private_incidents_only": BOOL,
        "create_in_triage": Enum("always", "optional"),
        **STAMPED,
    }
)
_USER = ObjectSpec(
    {
        "id": STR,
        "name": STR,
        "role": Enum("viewer", "responder", "administrator", "owner", "unset"),
    },
    {"email": STR, "slack_user_id": STR},
)
_FOLLOW_UP_V2 = ObjectSpec(
    {
        "id": STR,
        "incident_id": STR,
        "title": STR,
        "status": FOLLOW_UP_STATUS,
        "labels": ListOf(STR),
        "creator": Obj("ActorV2"),
        **STAMPED,
    },
    {
        "completed_at": TIME,
        "description": STR,
        "assignee": Obj("UserV2"),
        "priority": Obj("FollowUpPriorityV2"),
        "external_issue_reference": Obj("ExternalIssueReferenceV2"),
    },
)
_RANKED = ObjectSpec({"id": STR, "name": STR, "rank": INT}, {"description": STR})
_PAGE = ObjectSpec({"page_size": INT}, {"after": STR})
WEEKDAY = Enum("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ESCALATION_STATUS = Enum(*ESCALATION_STATUSES)
ESCALATION_EVENT = Enum(
    "entered_grace_period", "triggered", "notified_users", "notified_channels", "acked",
    "cancelled", "resolved", "expired",
)  # fmt: skip
URGENCY = Enum("high", "low")
SHIFTS = ListOf(Obj("ScheduleEntryV2"))


def _result(key: str, item: Type) -> ObjectSpec:
    return ObjectSpec({key: item})


def _list_result(key: str, item: str, meta: str | None = None) -> ObjectSpec:
    required: dict[str, Type] = {key: ListOf(Obj(item))}
    if meta is not None:
        required["pagination_meta"] = Obj(meta)
    return ObjectSpec(required)


REQUIRED: dict[str, ObjectSpec] = {
    # errors
    "ErrorV2": ObjectSpec(
        {"type": STR, "status": INT, "request_id": STR, "errors": ListOf(Obj("ErrorItemV2"))},
        {"rate_limit": Obj("RateLimitV2"), "debug": AnyObject()},
    ),
    "ErrorItemV2": ObjectSpec(
        {"code": STR, "message": STR}, {"source": Obj("ErrorSource"), "metadata": AnyObject()}
    ),
    "ErrorSource": ObjectSpec({"field": STR, "pointer": STR}),  # section 0: both, always
    "RateLimitV2": ObjectSpec({"name": STR, "limit": INT, "remaining": INT, "retry_after": TIME}),
    # the catalog
    "SeverityV2": _SEVERITY,
    "IncidentStatusV2": _with(_SEVERITY, {"category": CATEGORIES}),
    "IncidentTypeV1": _with(_TYPE, owning_team_ids=IDS),
    "IncidentTypeV2": _TYPE,
    "IncidentRoleV2": _ROLE,
    "EmbeddedIncidentRoleV2": _with(_ROLE, required=BOOL),
    "CustomFieldV2": ObjectSpec(
        {
            "id": STR,
            "name": STR,
            "description": STR,
            "field_type": Enum("single_select", "multi_select", "text", "link", "numeric"),
            **STAMPED,
        },
        {"fixed_filter": Obj("CustomFieldFixedFilterV2")},
    ),
    "CustomFieldFixedFilterV2": ObjectSpec({"catalog_attribute_id": STR, "values": IDS}),
    "CustomFieldTypeInfoV2": ObjectSpec(
        {
            "id": STR,
            "name": STR,
            "description": STR,
            "field_type": Enum("single_select", "multi_select", "text", "link", "numeric"),
            "options": ListOf(Obj("CustomFieldOptionV1")),
        }
    ),
    "CustomFieldOptionV1": ObjectSpec(
        {"id": STR, "custom_field_id": STR, "value": STR, "sort_key": INT}
    ),
    "IncidentTimestampV2": ObjectSpec({"id": STR, "name": STR, "rank": INT}),
    # people
    "UserV2": _USER,
    "UserWithRolesV2": _with(
        _USER,
        {
            "base_role": Obj("RBACRoleV2"),
            "custom_roles": ListOf(Obj("RBACRoleV2")),
            "is_active": BOOL,  # section 0
            "seats": Obj("SeatsV2"),  # section 0
        },
    ),
    "SeatsV2": ObjectSpec({"on_call": SEAT, "response": SEAT}),
    "RBACRoleV2": ObjectSpec({"id": STR, "name": STR, "slug": STR, "description": STR}),
    "ActorV2": ObjectSpec(
        {},
        {
            "api_key": Obj("APIKeyV2"),
            "user": Obj("UserV2"),
            "workflow": Obj("WorkflowActorV2"),
            "alert": Obj("AlertActorV2"),
        },
    ),
    "APIKeyV2": ObjectSpec({"id": STR, "name": STR}),
    "WorkflowActorV2": ObjectSpec({"id": STR, "name": STR}),
    "AlertActorV2": ObjectSpec({"id": STR, "title": STR}),
    # incidents
    "IncidentV2": ObjectSpec(
        {
            "id": STR,
            "reference": STR,
            "name": STR,
            "incident_status": Obj("IncidentStatusV2"),
            "visibility": Enum("public", "private"),
            "mode": Enum("standard", "retrospective", "test", "tutorial"),
            "creator": Obj("ActorV2"),
            "incident_role_assignments": ListOf(Obj("IncidentRoleAssignmentV2")),
            "custom_field_entries": ListOf(Obj("CustomFieldEntryV2")),
            "slack_team_id": STR,
            "slack_channel_id": STR,
            **STAMPED,
            "last_activity_at": TIME,  # section 0
            "team_ids": IDS,  # section 0
        },
        {
            "severity": Obj("SeverityV2"),
            "incident_type": Obj("IncidentTypeV2"),
            "summary": STR,
            "call_url": STR,
            "permalink": STR,
            "incident_timestamp_values": ListOf(Obj("IncidentTimestampValueV2")),
            "duration_metrics": ListOf(Obj("IncidentDurationMetricWithValueV2")),
            "slack_channel_name": STR,
            "postmortem_document_url": STR,
            "external_issue_reference": Obj("ExternalIssueReferenceV2"),
            "has_debrief": BOOL,
            "workload_minutes_late": NUM,
            "workload_minutes_sleeping": NUM,
            "workload_minutes_total": NUM,
            "workload_minutes_working": NUM,
            "debriefs": ListOf(Obj("DebriefV2")),  # section 0
            "slack_channel_url": STR,  # section 0
            "ms_teams_channel_url": STR,  # section 0
            "postmortem_document_ids": IDS,  # section 0
        },
    ),
    "IncidentRoleAssignmentV2": ObjectSpec(
        {"role": Obj("EmbeddedIncidentRoleV2")}, {"assignee": Obj("UserV2")}
    ),
    "CustomFieldEntryV2": ObjectSpec(
        {"custom_field": Obj("CustomFieldTypeInfoV2"), "values": ListOf(Obj("CustomFieldValueV2"))}
    ),
    "CustomFieldValueV2": ObjectSpec(
        {},
        {
            "value_option": Obj("CustomFieldOptionV1"),
            "value_text": STR,
            "value_link": STR,
            "value_numeric": STR,
            "value_catalog_entry": AnyObject(),
        },
    ),
    "IncidentTimestampValueV2": ObjectSpec(
        {"incident_timestamp": Obj("IncidentTimestampV2")}, {"value": Obj("TimestampValueV2")}
    ),
    "TimestampValueV2": ObjectSpec({}, {"value": TIME}),
    "IncidentDurationMetricWithValueV2": ObjectSpec(
        {
            "duration_metric": Obj("IncidentDurationMetricV2"),
            # section 0: always sent
            "status": Enum("calculating", "invalid_timestamps", "success", "timestamps_missing"),
        },
        {"value_seconds": INT},
    ),
    "IncidentDurationMetricV2": ObjectSpec({"id": STR, "name": STR}),
    "DebriefV2": ObjectSpec({"id": STR, "start_at": TIME, "end_at": TIME}),
    "ExternalIssueReferenceV2": ObjectSpec(
        {"provider": PROVIDERS, "issue_name": STR, "issue_permalink": STR}
    ),
    "IncidentUpdateV2": ObjectSpec(
        {
            "id": STR,
            "incident_id": STR,
            "new_incident_status": Obj("IncidentStatusV2"),
            "updater": Obj("ActorV2"),
            "created_at": TIME,
        },
        {"message": STR, "new_severity": Obj("SeverityV2"), "merged_into_incident_id": STR},
    ),
    # follow-ups
    "FollowUpV2": _FOLLOW_UP_V2,
    "FollowUpV3": _with(
        _FOLLOW_UP_V2, assignee_team=Obj("TeamSlimV2"), category=Obj("FollowUpCategoryV3")
    ),
    "TeamSlimV2": ObjectSpec({"id": STR, "name": STR}),
    "FollowUpPriorityV2": _RANKED,
    "FollowUpCategoryV3": _RANKED,
    # on-call: schedules and their shifts (section 0 adds permalink and next_shifts)
    "ScheduleV2": ObjectSpec(
        {
            "id": STR,
            "name": STR,
            "timezone": STR,
            "permalink": STR,
            "annotations": AnyObject(),
            "team_ids": IDS,
            **STAMPED,
        },
        {
            "config": Obj("ScheduleConfigV2"),
            "current_shifts": SHIFTS,
            "next_shifts": SHIFTS,
            "holidays_public_config": Obj("ScheduleHolidaysPublicConfigV2"),
        },
    ),
    "ScheduleHolidaysPublicConfigV2": ObjectSpec({"country_codes": ListOf(STR)}),
    "ScheduleConfigV2": ObjectSpec({"rotations": ListOf(Obj("ScheduleRotationV2"))}),
    "ScheduleRotationV2": ObjectSpec(
        {
            "id": STR,
            "name": STR,
            "handover_start_at": TIME,
            "handovers": ListOf(Obj("ScheduleRotationHandoverV2")),
            "layers": ListOf(Obj("ScheduleLayerV2")),
            "users": ListOf(Obj("UserV2")),
            "working_intervals": ListOf(Obj("ScheduleRotationWorkingIntervalV2")),
        },
        {
            "effective_from": TIME,
            "scheduling_mode": Enum("fair", "sequential"),
            "working_interval": ListOf(Obj("ScheduleRotationWorkingIntervalV2")),
        },
    ),
    "ScheduleRotationHandoverV2": ObjectSpec(
        {}, {"interval": INT, "interval_type": Enum("hourly", "daily", "weekly")}
    ),
    "ScheduleLayerV2": ObjectSpec({}, {"id": STR, "name": STR}),
    "ScheduleRotationWorkingIntervalV2": ObjectSpec(
        {"weekday": WEEKDAY, "start_time": STR, "end_time": STR}
    ),
    "ScheduleEntryV2": ObjectSpec(
        {"start_at": TIME, "end_at": TIME},
        {
            "entry_id": STR,
            "fingerprint": STR,
            "rotation_id": STR,
            "layer_id": STR,
            "user": Obj("UserV2"),
        },
    ),
    "ScheduleEntriesListPayloadV2": ObjectSpec(
        {"scheduled": SHIFTS, "overrides": SHIFTS, "final": SHIFTS}
    ),
    "AfterPaginationMetaResultV2": ObjectSpec({"after": STR, "after_url": STR}),
    # escalation paths (section 0 adds kind and current_responders) and escalations
    "EscalationPathV2": ObjectSpec(
        {
            "id": STR,
            "name": STR,
            "path": ListOf(Obj("EscalationPathNodeV2")),
            "kind": Enum("standalone", "templated"),
            "team_ids": IDS,
        },
        {
            "current_responders": ListOf(Obj("UserV2")),
            "working_hours": ListOf(AnyObject()),
            "repeat_config": AnyObject(),
            "template_id": STR,
            "param_bindings": AnyObject(),
        },
    ),
    "EscalationPathNodeV2": ObjectSpec(
        {
            "id": STR,
            "type": Enum(
                "level", "repeat", "if_else", "notify_channel", "delay", "escalation_path"
            ),
        },
        {
            "level": Obj("EscalationPathNodeLevelV2"),
            "repeat": Obj("EscalationPathNodeRepeatV2"),
            "if_else": AnyObject(),
            "notify_channel": AnyObject(),
            "delay": AnyObject(),
            "escalation_path": AnyObject(),
        },
    ),
    "EscalationPathNodeLevelV2": ObjectSpec(
        {"targets": ListOf(Obj("EscalationPathTargetV2"))},
        {
            "ack_mode": Enum("all", "first"),
            "round_robin_config": Obj("EscalationPathRoundRobinConfigV2"),
            "time_to_ack_interval_condition": Enum("active", "inactive"),
            "time_to_ack_seconds": INT,
            "time_to_ack_weekday_interval_config_id": STR,
            "retry_config": AnyObject(),
        },
    ),
    "EscalationPathTargetV2": ObjectSpec(
        {
            "type": Enum("schedule", "user", "slack_channel", "msteams_channel"),
            "id": STR,
            "urgency": URGENCY,
        },
        {
            "schedule_mode": Enum("currently_on_call", "all_users_for_rota", "all_users", ""),
            "selected_rota_id": STR,
        },
    ),
    "EscalationPathRoundRobinConfigV2": ObjectSpec(
        {"enabled": BOOL}, {"rotate_after_seconds": INT}
    ),
    "EscalationPathNodeRepeatV2": ObjectSpec({"repeat_times": INT, "to_node": STR}),
    "EscalationV2": ObjectSpec(
        {
            "id": STR,
            "title": STR,
            "status": ESCALATION_STATUS,
            "description": STR,  # required by the SDK that section 0 comes from
            "priority": Obj("EscalationPriorityV2"),
            "creator": Obj("EscalationCreatorV2"),
            "events": ListOf(Obj("EscalationEventV2")),
            "related_incidents": ListOf(Obj("IncidentSlimV2")),
            "related_alerts": ListOf(AnyObject()),
            **STAMPED,
        },
        {"escalation_path_id": STR},
    ),
    "EscalationPriorityV2": ObjectSpec({"name": STR}),
    "EscalationCreatorV2": ObjectSpec(
        {},
        {"user": Obj("UserV2"), "workflow": Obj("WorkflowActorV2"), "alert": Obj("AlertActorV2")},
    ),
    "EscalationEventV2": ObjectSpec(
        {"id": STR, "event": ESCALATION_EVENT, "occurred_at": TIME},
        {"channels": ListOf(AnyObject()), "urgency": URGENCY, "users": ListOf(Obj("UserV2"))},
    ),
    "IncidentSlimV2": ObjectSpec(
        {
            "id": STR,
            "external_id": INT,
            "name": STR,
            "reference": STR,
            "visibility": Enum("public", "private"),
            "status_category": Enum(
                "triage",
                "declined",
                "merged",
                "canceled",
                "active",
                "post-incident",
                "closed",
                "paused",
            ),
        },
        {"summary": STR},
    ),
    # pagination and the success bodies
    "PaginationMetaResultV2": _PAGE,
    "PaginationMetaResultWithTotalV2": _with(_PAGE, total_record_count=INT),
    "IncidentsListResultV2": _list_result(
        "incidents", "IncidentV2", "PaginationMetaResultWithTotalV2"
    ),
    "IncidentResultV2": _result("incident", Obj("IncidentV2")),
    "SeveritiesListResultV1": _list_result("severities", "SeverityV2"),
    "SeverityResultV1": _result("severity", Obj("SeverityV2")),
    "IncidentStatusesListResultV1": _list_result("incident_statuses", "IncidentStatusV2"),
    "IncidentStatusResultV1": _result("incident_status", Obj("IncidentStatusV2")),
    "IncidentTypesListResultV1": _list_result("incident_types", "IncidentTypeV1"),
    "IncidentRolesListResultV2": _list_result("incident_roles", "IncidentRoleV2"),
    "CustomFieldsListResultV2": _list_result("custom_fields", "CustomFieldV2"),
    "IncidentTimestampsListResultV2": _list_result("incident_timestamps", "IncidentTimestampV2"),
    "CustomFieldOptionsListResultV1": _list_result(
        "custom_field_options", "CustomFieldOptionV1", "PaginationMetaResultV2"
    ),
    "IncidentUpdatesListResultV2": _list_result(
        "incident_updates", "IncidentUpdateV2", "PaginationMetaResultV2"
    ),
    "FollowUpsListResultV2": _list_result("follow_ups", "FollowUpV2"),
    "FollowUpResultV2": _result("follow_up", Obj("FollowUpV2")),
    "FollowUpsListResultV3": _list_result("follow_ups", "FollowUpV3", "PaginationMetaResultV2"),
    "FollowUpResultV3": _result("follow_up", Obj("FollowUpV3")),
    "UsersListResultV2": _list_result("users", "UserWithRolesV2", "PaginationMetaResultV2"),
    "IncidentUpdatesCreateResultV2": _result("incident_update", Obj("IncidentUpdateV2")),
    "SchedulesListResultV2": ObjectSpec(
        {"schedules": ListOf(Obj("ScheduleV2"))},
        {"pagination_meta": Obj("PaginationMetaResultWithTotalV2")},
    ),
    "SchedulesShowResultV2": _result("schedule", Obj("ScheduleV2")),
    "SchedulesListScheduleEntriesResultV2": ObjectSpec(
        {"schedule_entries": Obj("ScheduleEntriesListPayloadV2")},
        {"pagination_meta": Obj("AfterPaginationMetaResultV2")},
    ),
    "EscalationsListPathsResultV2": _list_result(
        "escalation_paths", "EscalationPathV2", "PaginationMetaResultV2"
    ),
    "EscalationsCreateResultV2": _result("escalation", Obj("EscalationV2")),
}

# (method, route template) -> the object its success body is; every error body is ErrorV2.
ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/v2/incidents"): "IncidentsListResultV2",
    ("POST", "/v2/incidents"): "IncidentResultV2",
    ("GET", "/v2/incidents/{id}"): "IncidentResultV2",
    ("POST", "/v2/incidents/{id}/actions/edit"): "IncidentResultV2",
    ("GET", "/v1/severities"): "SeveritiesListResultV1",
    ("GET", "/v1/severities/{id}"): "SeverityResultV1",
    ("GET", "/v1/incident_statuses"): "IncidentStatusesListResultV1",
    ("GET", "/v1/incident_statuses/{id}"): "IncidentStatusResultV1",
    ("GET", "/v1/incident_types"): "IncidentTypesListResultV1",
    ("GET", "/v2/incident_roles"): "IncidentRolesListResultV2",
    ("GET", "/v2/custom_fields"): "CustomFieldsListResultV2",
    ("GET", "/v2/incident_timestamps"): "IncidentTimestampsListResultV2",
    ("GET", "/v1/custom_field_options"): "CustomFieldOptionsListResultV1",
    ("GET", "/v2/incident_updates"): "IncidentUpdatesListResultV2",
    ("GET", "/v2/follow_ups"): "FollowUpsListResultV2",
    ("GET", "/v2/follow_ups/{id}"): "FollowUpResultV2",
    ("GET", "/v3/follow_ups"): "FollowUpsListResultV3",
    ("GET", "/v3/follow_ups/{id}"): "FollowUpResultV3",
    ("GET", "/v2/users"): "UsersListResultV2",
    ("POST", "/v2/incident_updates"): "IncidentUpdatesCreateResultV2",
    ("GET", "/v2/schedules"): "SchedulesListResultV2",
    ("GET", "/v2/schedules/{id}"): "SchedulesShowResultV2",
    ("GET", "/v2/schedule_entries"): "SchedulesListScheduleEntriesResultV2",
    ("GET", "/v2/escalation_paths"): "EscalationsListPathsResultV2",
    ("POST", "/v2/escalations"): "EscalationsCreateResultV2",
}


# --- the check ---------------------------------------------------------------------------------

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def problems_in(value: Any, expected: Type, path: str = "") -> list[str]:
    """Every way ``value`` differs from ``expected``, each naming its JSON path."""
    where = path or "<body>"
    if value is None:
        return [f"{where}: null (omit an absent optional value instead)"]
    if isinstance(expected, Obj):
        return _object_problems(value, REQUIRED[expected.name], expected.name, path)
    if isinstance(expected, ListOf):
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        found: list[str] = []
        for index, item in enumerate(value):
            found += problems_in(item, expected.item, f"{path}[{index}]")
        return found
    if isinstance(expected, Enum):
        if value not in expected.values:
            return [f"{where}: {value!r} is not one of {sorted(expected.values)}"]
        return []
    if isinstance(expected, AnyObject):
        return [] if isinstance(value, dict) else [f"{where}: expected an object"]
    return _scalar_problems(value, expected, where)


def _scalar_problems(value: Any, expected: Scalar, where: str) -> list[str]:
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "datetime": isinstance(value, str) and bool(_RFC3339.match(value)),
    }[expected.kind]
    return [] if ok else [f"{where}: {value!r} is not a {expected.kind}"]


def _object_problems(value: Any, spec: ObjectSpec, name: str, path: str) -> list[str]:
    where = path or "<body>"
    if not isinstance(value, dict):
        return [f"{where}: expected a {name} object, got {type(value).__name__}"]
    found = [
        f"{where}: {name} lacks required key {key!r}" for key in spec.required if key not in value
    ]
    for key, item in value.items():
        expected = spec.required.get(key) or spec.optional.get(key)
        if expected is None:
            found.append(f"{where}: {name} has key {key!r}, which the API does not send")
        else:
            found += problems_in(item, expected, f"{path}.{key}" if path else key)
    return found


# --- walking every route ---------------------------------------------------------------------


@dataclass
class Answer:
    method: str
    route: str
    status: int
    body: Any


class Walk:
    """An API client whose every answer is recorded under its route template."""

    def __init__(self, sandbox: SandboxControl, routes: list[Route]) -> None:
        self.sandbox = sandbox
        self.routes = routes
        self.answers: list[Answer] = []
        hooks = {"response": [self._record]}
        self.api = sandbox.api(event_hooks=hooks)
        self.anonymous = httpx.Client(base_url=sandbox.base_url, event_hooks=hooks, timeout=30)

    def _record(self, response: httpx.Response) -> None:
        response.read()
        request = response.request
        self.answers.append(
            Answer(
                request.method, self.route(request.url.path), response.status_code, response.json()
            )
        )

    def route(self, path: str) -> str:
        for route in self.routes:
            if route.path_regex.match(path):
                return route.path
        return f"<no route: {path}>"

    def get(self, path: str, **params: Any) -> Any:
        return self.api.get(path, params=params).json()

    def pages(self, path: str, key: str, **params: Any) -> list[Any]:
        """Every item of a paged list, following pagination_meta.after."""
        items, after = [], None
        while True:
            body = self.get(path, **params, **({"after": after} if after else {}))
            items += body[key]
            after = body["pagination_meta"].get("after")
            if after is None:
                return items

    def close(self) -> None:
        self.api.close()
        self.anonymous.close()


def walk_catalog(walk: Walk) -> None:
    """Every catalog list and show, options paged, users with and without inactive ones."""
    for severity in walk.get("/v1/severities")["severities"]:
        walk.get(f"/v1/severities/{severity['id']}")
    for status in walk.get("/v1/incident_statuses")["incident_statuses"]:
        walk.get(f"/v1/incident_statuses/{status['id']}")
    for path in ("/v1/incident_types", "/v2/incident_roles", "/v2/incident_timestamps"):
        walk.get(path)
    for custom_field in walk.get("/v2/custom_fields")["custom_fields"]:
        walk.pages(
            "/v1/custom_field_options",
            "custom_field_options",
            custom_field_id=custom_field["id"],
            page_size=3,
        )
    walk.pages("/v2/users", "users", page_size=10)
    walk.pages("/v2/users", "users", page_size=10, include_inactive="true")


def walk_incidents(walk: Walk) -> None:
    """Every incident of every mode (paged), a few shown by ID and by number, every update."""
    modes = ["standard", "retrospective", "test", "tutorial"]
    incidents = walk.pages("/v2/incidents", "incidents", page_size=100, **{"mode[one_of]": modes})
    for incident in incidents[:: max(1, len(incidents) // 10)]:
        walk.get(f"/v2/incidents/{incident['id']}")
        walk.get(f"/v2/incidents/{incident['reference'].removeprefix('INC-')}")
    walk.pages("/v2/incident_updates", "incident_updates", page_size=250)


def walk_follow_ups(walk: Walk) -> None:
    """Every follow-up through v3 (every mode, 50 a page to the end), some shown;
    v2 a day before its removal date and a day after (a 404), the clock moved and put back."""
    seen = []
    for mode in (None, "test", "tutorial"):
        params = {"incident_mode": mode} if mode else {}
        seen += walk.pages("/v3/follow_ups", "follow_ups", page_size=50, **params)
    for follow_up in seen[:: max(1, len(seen) // 10)]:
        walk.get(f"/v3/follow_ups/{follow_up['id']}")
    before = (V2_REMOVED_AT - timedelta(days=1) - walk.sandbox.now()).total_seconds()
    for move in (before, 2 * 86_400):
        walk.sandbox.advance_clock(move)
        walk.get("/v2/follow_ups")
        walk.get(f"/v2/follow_ups/{seen[0]['id']}")
    walk.sandbox.advance_clock(-before - 2 * 86_400)


def walk_errors(walk: Walk) -> None:
    """One error of each kind: 401, 403, 404, 422 (query and body), 429, 5xx."""
    walk.anonymous.get("/v2/incidents")
    api = walk.api
    api.get("/v2/incidents/01NOPE")
    api.get("/v3/follow_ups/01NOPE")
    api.get("/v2/incidents", params={"page_size": "501"})
    api.get("/v3/follow_ups", params={"incident_mode": "live"})
    api.get("/v2/users", params={"include_inactive": "maybe"})
    api.post("/v2/incidents", json={"visibility": "public"})
    api.post("/v2/incident_updates", json={})
    incident = api.get("/v2/incidents").json()["incidents"][0]
    api.post(
        f"/v2/incidents/{incident['id']}/actions/edit",
        json={"incident": {"severity_id": "01NOPE"}, "notify_incident_channel": False},
    )
    walk.sandbox.set_faults(
        next=[{"kind": "rate_limit"}, {"kind": "forbidden"}, {"kind": "status", "status": 503}]
    )
    for _ in range(3):
        api.get("/v1/severities")
    walk.sandbox.clear_faults()


def walk_after_changes(walk: Walk) -> None:
    """An edit, a created incident, follow-ups added and changed; then everything again."""
    api, sandbox = walk.api, walk.sandbox
    severities = api.get("/v1/severities").json()["severities"]
    statuses = api.get("/v1/incident_statuses").json()["incident_statuses"]
    learning = next(s for s in statuses if s["category"] == "learning")
    target = api.get("/v2/incidents", params={"status_category[one_of]": "live"}).json()
    edit = {
        "incident": {
            "summary": "Edited by the strict check",
            "severity_id": severities[-1]["id"],
            "incident_status_id": learning["id"],
        },
        "notify_incident_channel": False,
    }
    api.post(f"/v2/incidents/{target['incidents'][0]['id']}/actions/edit", json=edit)
    created = api.post(
        "/v2/incidents",
        json={
            "idempotency_key": "strict-1",
            "visibility": "public",
            "severity_id": severities[0]["id"],
        },
    ).json()["incident"]
    sandbox.update_incident(
        created["id"],
        teams=["Payments", "Data"],
        postmortem_document_ids=["01PMDOC1"],
        debriefs=[{"start_at": created["created_at"], "end_at": created["created_at"]}],
        follow_ups=[
            {"title": "Plain"},
            {"title": "Full", "assignee": "Alice Chen", "assignee_team": "Payments",
             "priority": "High", "category": "Process", "description": "All of it",
             "labels": ["strict"]},
        ],
    )  # fmt: skip
    for follow_up in api.get("/v3/follow_ups", params={"incident_id": created["id"]}).json()[
        "follow_ups"
    ]:
        sandbox.update_follow_up(follow_up["id"], status="completed", assignee=None, priority=None)
    walk_incidents(walk)
    walk_follow_ups(walk)
    walk.get(f"/v2/incidents/{created['id']}")


def walk_schedules(walk: Walk) -> None:
    """Schedules (paged, both page sizes, each shown) and each one's entries for 60 days,
    following the time cursor to the end; escalation paths, paged."""
    schedules = walk.pages("/v2/schedules", "schedules", page_size=1)
    walk.get("/v2/schedules", page_size=26)  # no next_shifts above 25
    start, end = walk.sandbox.now(), walk.sandbox.now() + timedelta(days=60)
    for schedule in schedules:
        walk.get(f"/v2/schedules/{schedule['id']}")
        window = {"schedule_id": schedule["id"], "entry_window_end": end.isoformat()}
        after = start.isoformat()
        while after:
            body = walk.get("/v2/schedule_entries", **window, entry_window_start=after)
            after = body.get("pagination_meta", {}).get("after")
    walk.pages("/v2/escalation_paths", "escalation_paths", page_size=1)


def walk_oncall(walk: Walk) -> None:
    """On-call before and after the clock passes a week of handovers; escalations to a path
    (with an incident) and to users, a replayed key; incident updates; their errors."""
    api, sandbox = walk.api, walk.sandbox
    walk_schedules(walk)
    path = walk.get("/v2/escalation_paths")["escalation_paths"][0]
    incident = walk.get("/v2/incidents", **{"status_category[one_of]": "live"})["incidents"][0]
    user = walk.get("/v2/users")["users"][0]
    to_path = {"idempotency_key": "strict-e1", "title": "Strict", "escalation_path_id": path["id"],
               "incident_id": incident["id"], "description": "All of it"}  # fmt: skip
    to_users = {"idempotency_key": "strict-e2", "title": "Strict", "user_ids": [user["id"]]}
    for body in (to_path, to_users, to_users):
        api.post("/v2/escalations", json=body)
    statuses = walk.get("/v1/incident_statuses")["incident_statuses"]
    learning = next(s for s in statuses if s["category"] == "learning")
    severity = walk.get("/v1/severities")["severities"][-1]
    update = {
        "idempotency_key": "strict-u1",
        "incident_id": incident["id"],
        "message": "Done",
        "to_incident_status_id": learning["id"],
        "to_severity_id": severity["id"],
    }
    words = {"idempotency_key": "strict-u2", "incident_id": incident["id"], "message": "Words"}
    refused = {**update, "idempotency_key": "strict-u3", "to_incident_status_id": statuses[0]["id"]}
    for body in (update, words, refused):
        api.post("/v2/incident_updates", json=body)
    api.get("/v2/schedules/01NOPE")
    api.get("/v2/schedule_entries")
    api.post("/v2/escalations", json={"idempotency_key": "strict-e3", "title": "Neither"})
    sandbox.advance_clock(7 * 86_400)
    walk_schedules(walk)
    sandbox.advance_clock(-7 * 86_400)


WALKS: list[Callable[[Walk], None]] = [
    walk_catalog,
    walk_incidents,
    walk_follow_ups,
    walk_errors,
    walk_oncall,
    walk_after_changes,
]


# --- the tests -------------------------------------------------------------------------------


def api_routes(server: SandboxThread) -> list[Route]:
    """The incident.io routes the sandbox serves (its /_sandbox control routes are not the API)."""
    return [
        r for r in server.app.routes if isinstance(r, Route) and not r.path.startswith("/_sandbox")
    ]


@pytest.fixture
def walk(sandbox: SandboxControl, sandbox_server: SandboxThread) -> Iterator[Walk]:
    sandbox.reset(rate_limit_per_minute=1_000_000)
    walk = Walk(sandbox, api_routes(sandbox_server))
    try:
        yield walk
    finally:
        walk.close()


def test_every_response_of_every_route_has_every_required_key(
    walk: Walk, sandbox_server: SandboxThread
) -> None:
    """Seeded data and after mutations: each body matches its table row; null appears nowhere."""
    for step in WALKS:
        step(walk)
    problems: list[str] = []
    for answer in walk.answers:
        row = "ErrorV2" if answer.status >= 400 else ROUTES.get((answer.method, answer.route))
        if row is None:
            problems.append(f"{answer.method} {answer.route} {answer.status}: no row in ROUTES")
            continue
        for problem in problems_in(answer.body, Obj(row))[:5]:
            problems.append(f"{answer.method} {answer.route} {answer.status}: {problem}")
    assert not problems, "\n".join(problems[:40])
    served = {
        (method, route.path)
        for route in api_routes(sandbox_server)
        for method in route.methods or ()
        if method != "HEAD"
    }
    answered = {(a.method, a.route) for a in walk.answers}
    assert served - answered == set(), "routes no walk exercises"
    assert {(m, r) for m, r in ROUTES if (m, r) not in served} == set(), "rows for no route"
    statuses = {a.status for a in walk.answers}
    assert {200, 401, 403, 404, 422, 429, 503} <= statuses


def test_the_walk_sees_every_follow_up_state_and_section_0_value(walk: Walk) -> None:
    """The walk reaches what section 0 added: every follow-up status, teams, seats, debriefs."""
    for step in WALKS:
        step(walk)
    bodies = [a.body for a in walk.answers if a.status < 400]
    follow_ups = [f for b in bodies for f in b.get("follow_ups", [])]
    assert {f["status"] for f in follow_ups} >= {"outstanding", "completed", "not_doing"}
    assert {"assignee_team", "category", "priority", "external_issue_reference"} <= {
        key for f in follow_ups for key in f
    }
    incidents = [i for b in bodies for i in [*b.get("incidents", []), b.get("incident")] if i]
    assert {"debriefs", "postmortem_document_ids", "slack_channel_url"} <= {
        key for i in incidents for key in i
    }
    metrics = {m["status"] for i in incidents for m in i["duration_metrics"]}
    assert {"success", "timestamps_missing"} <= metrics
    users = [u for b in bodies for u in b.get("users", [])]
    assert {u["is_active"] for u in users} == {True, False}
    roles = [r for b in bodies for r in b.get("incident_roles", [])]
    assert "" in {r["instructions"] for r in roles}  # sent empty, not left out
    assert any(b.get("follow_ups") for b in bodies if "pagination_meta" not in b)  # v2 served
    assert any(a.status == 404 and a.route == "/v2/follow_ups" for a in walk.answers)
    errors = [e for a in walk.answers if a.status >= 400 for e in a.body["errors"]]
    assert any(e.get("source", {}).get("pointer") == "/incident/severity_id" for e in errors)


def test_the_walk_sees_the_on_call_routes_succeed_with_section_0_values(walk: Walk) -> None:
    """Created escalations and updates (201), next_shifts both sent and left out, an override,
    current responders, a related incident, schedule entries paged by their time cursor."""
    for step in WALKS:
        step(walk)
    created = {(a.method, a.route) for a in walk.answers if a.status == 201}
    assert {("POST", "/v2/escalations"), ("POST", "/v2/incident_updates")} <= created
    bodies = [a.body for a in walk.answers if a.status < 400]
    schedules = [s for b in bodies for s in [*b.get("schedules", []), b.get("schedule")] if s]
    assert {"next_shifts" in s for s in schedules} == {True, False}
    pages = [b for b in bodies if "schedule_entries" in b]
    assert any("pagination_meta" in b for b in pages)
    assert any(e.get("entry_id") for b in pages for e in b["schedule_entries"]["final"])
    paths = [p for b in bodies for p in b.get("escalation_paths", [])]
    assert all(p["current_responders"] for p in paths)
    escalations = [b["escalation"] for b in bodies if "escalation" in b]
    assert any(e["related_incidents"] and e.get("escalation_path_id") for e in escalations)
    updates = [b["incident_update"] for b in bodies if "incident_update" in b]
    assert {u.get("message") for u in updates} >= {"Done", "Words"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"id": "x", "name": "y", "rank": 1}, "lacks required key 'description'"),
        ({"id": "x", "name": "y", "rank": "1", "description": ""}, "'1' is not a integer"),
        ({"id": "x", "name": "y", "rank": True, "description": ""}, "True is not a integer"),
        ({"id": "x", "name": "y", "rank": 1, "description": None}, "null"),
        ({"id": "x", "name": "y", "rank": 1, "description": "", "colour": "red"}, "'colour'"),
    ],
)
def test_the_check_rejects_what_a_generated_client_would(body: Any, expected: str) -> None:
    """Missing, mistyped, null and unknown keys are each reported, with their path."""
    severity = {**body, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}
    found = problems_in({"severities": [severity]}, Obj("SeveritiesListResultV1"))
    assert len(found) == 1
    assert expected in found[0]
    assert found[0].startswith("severities[0]")


def test_the_check_follows_enums_lists_and_times() -> None:
    """A value outside an enum, a non-list and a time that is not RFC 3339 are reported."""
    assert problems_in("frozen", Obj("IncidentStatusV2")) == [
        "<body>: expected a IncidentStatusV2 object, got str"
    ]
    assert problems_in({"on_call": "all", "response": "none"}, Obj("SeatsV2")) == [
        "on_call: 'all' is not one of ['full_access', 'none', 'viewer_only']"
    ]
    assert problems_in("01A", IDS) == ["<body>: expected a list, got str"]
    assert problems_in(datetime(2026, 1, 1).isoformat(), TIME) == [
        "<body>: '2026-01-01T00:00:00' is not a datetime"
    ]
