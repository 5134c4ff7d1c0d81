"""The incident.io API layer: client, models, filters, pagination, rate limit, errors.

Everything the rest of the product needs is importable from here; the
submodules are an implementation detail. ``IncidentIOClient`` is imported on
first use, so commands that never call the API (``validate --offline``,
``test-rule``) do not pay for httpx and stamina at start-up (docs/benchmarks.md);
the on-call models (``automations.incidentio.oncall``) come with it, not here.
"""

from typing import TYPE_CHECKING, Any

from automations.incidentio.filters import IncidentFilter
from automations.incidentio.follow_ups import TimeWindow
from automations.incidentio.metrics import RequestCounter
from automations.incidentio.models import (
    Actor,
    CustomField,
    CustomFieldEntry,
    CustomFieldOption,
    CustomFieldValue,
    DurationMetricStatus,
    FollowUp,
    FollowUpStatus,
    Incident,
    IncidentMode,
    IncidentRole,
    IncidentRoleAssignment,
    IncidentStatus,
    IncidentTimestamp,
    IncidentTimestampValue,
    IncidentType,
    IncidentUpdate,
    Seat,
    Severity,
    StatusCategory,
    User,
    Visibility,
)
from automations.incidentio.pagination import IncidentPage
from automations.incidentio.payloads import (
    CustomFieldEntryPayload,
    CustomFieldValuePayload,
    EscalationCreate,
    IncidentCreate,
    IncidentEdit,
    IncidentRoleAssignmentPayload,
    IncidentTimestampValuePayload,
    IncidentUpdateCreate,
    UserReference,
)
from automations.incidentio.ratelimit import TokenBucket

if TYPE_CHECKING:
    from automations.incidentio.client import IncidentIOClient


def __getattr__(name: str) -> Any:
    if name == "IncidentIOClient":
        from automations.incidentio.client import IncidentIOClient

        return IncidentIOClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Actor",
    "CustomField",
    "CustomFieldEntry",
    "CustomFieldEntryPayload",
    "CustomFieldOption",
    "CustomFieldValue",
    "CustomFieldValuePayload",
    "DurationMetricStatus",
    "EscalationCreate",
    "FollowUp",
    "FollowUpStatus",
    "Incident",
    "IncidentCreate",
    "IncidentEdit",
    "IncidentFilter",
    "IncidentIOClient",
    "IncidentMode",
    "IncidentPage",
    "IncidentRole",
    "IncidentRoleAssignment",
    "IncidentRoleAssignmentPayload",
    "IncidentStatus",
    "IncidentTimestamp",
    "IncidentTimestampValue",
    "IncidentTimestampValuePayload",
    "IncidentType",
    "IncidentUpdate",
    "IncidentUpdateCreate",
    "RequestCounter",
    "Seat",
    "Severity",
    "StatusCategory",
    "TimeWindow",
    "TokenBucket",
    "User",
    "UserReference",
    "Visibility",
]
