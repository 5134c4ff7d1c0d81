"""The incident.io REST client: one method per call the product makes.

Each method checks its arguments, builds the route, query and body, and hands
them to ``APICaller`` (caller.py: retries, rate limit, errors, paging), which
returns typed objects.

Synchronous on purpose: the daemon runs jobs in APScheduler threads, and one
``httpx.Client`` (connection pool) is safe to share between them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from automations.incidentio.caller import ESCALATIONS_ROUTE, APICaller
from automations.incidentio.filters import IncidentFilter
from automations.incidentio.follow_ups import (
    MAX_FOLLOW_UP_PAGE_SIZE,
    TimeWindow,
    follow_up_params,
)
from automations.incidentio.models import (
    CustomField,
    CustomFieldOption,
    FollowUp,
    Incident,
    IncidentRole,
    IncidentStatus,
    IncidentTimestamp,
    IncidentType,
    IncidentUpdate,
    Severity,
    User,
)
from automations.incidentio.oncall import Escalation, EscalationPath, Schedule, ScheduleEntry
from automations.incidentio.pagination import IncidentPage, check_page_size, unique_incidents
from automations.incidentio.payloads import (
    EscalationCreate,
    IncidentCreate,
    IncidentEdit,
    IncidentUpdateCreate,
)

MAX_USERS_PAGE_SIZE = 10_000
MAX_SCHEDULES_PAGE_SIZE = 10_000
MAX_PATHS_PAGE_SIZE = 25
_REFERENCE = re.compile(r"^(?:INC-)?(\d+)$", re.IGNORECASE)
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+$")


class IncidentIOClient(APICaller):
    """Talks to incident.io (or the sandbox) with retries, a shared rate limit and counters.

    Give every client in the process the same ``TokenBucket`` (and
    ``RequestCounter``, and ``escalations_rate_limiter``) to share them;
    ``requests_per_minute`` only sizes a private bucket when none is passed.
    ``stopping`` (the daemon's stop event) cuts every wait short, for a retry
    or a token: a stop is not held back by a Retry-After. ``retry_waits`` is the
    backoff between attempts (``RetryWaits()``: 0.5 s doubling to 30 s, plus jitter).
    """

    # --- incidents ------------------------------------------------------------

    def iter_incident_pages(
        self, filter: IncidentFilter | None = None, page_size: int = 250
    ) -> Iterator[IncidentPage]:
        """Pages of ``GET /v2/incidents``, fetched lazily (one request per page).

        Arguments are checked now; requests start when iteration does.
        Each incident comes at most once per listing, and a malformed one is left
        out with a warning (and counted) instead of failing its page.
        """
        check_page_size(page_size)
        base = [*(filter or IncidentFilter()).to_params(), ("page_size", str(page_size))]
        pages = self._pages("/v2/incidents", "incidents", Incident, base, lenient=True)
        return unique_incidents(pages, "GET /v2/incidents")

    def iter_incidents(
        self, filter: IncidentFilter | None = None, page_size: int = 250
    ) -> Iterator[Incident]:
        return (i for page in self.iter_incident_pages(filter, page_size) for i in page.incidents)

    def get_incident(self, id_or_reference: str) -> Incident:
        """By ID, number or reference: "01H...", "123" and "INC-123" all work."""
        ident = _incident_path_id(id_or_reference)
        return self._one("GET", "/v2/incidents/{id}", "incident", Incident, {"id": ident})

    def edit_incident(
        self, incident_id: str, edit: IncidentEdit, *, notify_incident_channel: bool
    ) -> Incident:
        """Edit only the fields set on ``edit``: one POST, never retried here.

        A resend is never blind: after a timeout, a dropped connection, a 5xx or a
        429 the edit may have landed (a second POST would notify the channel
        again) or not (and a human may have changed the incident since the
        re-read). The caller leaves its claim unconfirmed and ``Engine.reconcile``
        re-reads the incident before deciding, at the start of the next cycle.
        """
        payload = edit.payload()
        if not payload:
            raise ValueError("IncidentEdit sets no fields: nothing to edit")
        body = {"incident": payload, "notify_incident_channel": bool(notify_incident_channel)}
        path = {"id": _incident_path_id(incident_id)}
        route = "/v2/incidents/{id}/actions/edit"
        return self._one("POST", route, "incident", Incident, path, body=body, retry=False)

    def create_incident(self, *, idempotency_key: str, visibility: str, **fields: Any) -> Incident:
        """Create (200, not 201); the idempotency key makes a retried create safe."""
        create = IncidentCreate(idempotency_key=idempotency_key, visibility=visibility, **fields)
        return self._one("POST", "/v2/incidents", "incident", Incident, body=create.payload())

    # --- incident updates, on-call and escalations (issue 11) -------------------

    def post_incident_update(
        self,
        incident_id: str,
        *,
        idempotency_key: str,
        message: str | None = None,
        to_status_id: str | None = None,
        to_severity_id: str | None = None,
    ) -> IncidentUpdate:
        """Share an update (markdown ``message``), moving status or severity too if given.

        Status moves follow the edit action's lifecycle rules. Unlike
        ``edit_incident`` this call is retried (timeouts, dropped connections,
        5xx, 429): the idempotency key makes the API answer a resend with the
        first update, so a retry can neither post twice nor move the status
        twice. The edit action has no key (a resend could notify the channel
        again), so it is sent once and reconciled instead. Reuse the key only
        for the same update.
        """
        create = IncidentUpdateCreate(
            idempotency_key=idempotency_key,
            incident_id=_path_id(incident_id),
            message=message,
            to_incident_status_id=to_status_id,
            to_severity_id=to_severity_id,
        )
        route = "/v2/incident_updates"
        return self._one("POST", route, "incident_update", IncidentUpdate, body=create.payload())

    def iter_schedules(self, page_size: int = 25) -> Iterator[Schedule]:
        """Every schedule with who is on call now; ``next_shifts`` only when page_size <= 25."""
        size = check_page_size(page_size, MAX_SCHEDULES_PAGE_SIZE)
        return self._items("/v2/schedules", "schedules", Schedule, [("page_size", str(size))])

    def get_schedule(self, schedule_id: str) -> Schedule:
        path = {"id": _path_id(schedule_id)}
        return self._one("GET", "/v2/schedules/{id}", "schedule", Schedule, path)

    def iter_schedule_entries(
        self, schedule_id: str, start: datetime, end: datetime
    ) -> Iterator[ScheduleEntry]:
        """Who is on call from ``start`` to ``end``: the ``final`` entries (overrides applied).

        In start order, each shift once, fetched lazily. The route pages by
        time: while ``pagination_meta`` is present the same query is resent
        with ``entry_window_start=<after>``; its absence ends the listing. A
        shift spanning a page boundary comes on both pages and is yielded once.
        """
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware")
        if end <= start:
            raise ValueError(f"end ({end.isoformat()}) must be after start ({start.isoformat()})")
        return self._schedule_entries(_path_id(schedule_id), _rfc3339(start), _rfc3339(end))

    def iter_escalation_paths(
        self, page_size: int = MAX_PATHS_PAGE_SIZE
    ) -> Iterator[EscalationPath]:
        """Every escalation path with its ``current_responders`` (paged by ``after``, 25 max)."""
        size = check_page_size(page_size, MAX_PATHS_PAGE_SIZE)
        route = "/v2/escalation_paths"
        return self._items(route, "escalation_paths", EscalationPath, [("page_size", str(size))])

    def create_escalation(
        self,
        *,
        idempotency_key: str,
        title: str,
        escalation_path_id: str | None = None,
        user_ids: Sequence[str] | None = None,
        description: str | None = None,
        incident_id: str | None = None,
    ) -> Escalation:
        """Page a path or named users (exactly one of the two); 201 with the escalation.

        A reused key returns the existing escalation, so the call is retried
        like any idempotent one. The route allows 60 requests a minute: each
        attempt also takes a token from ``escalations_rate_limiter``.
        """
        create = EscalationCreate(
            idempotency_key=idempotency_key,
            title=title,
            escalation_path_id=_optional_id(escalation_path_id),
            user_ids=None if user_ids is None else tuple(_path_id(u) for u in user_ids),
            description=description,
            incident_id=_optional_id(incident_id),
        )
        return self._one("POST", ESCALATIONS_ROUTE, "escalation", Escalation, body=create.payload())

    # --- the catalog ----------------------------------------------------------

    def list_severities(self) -> list[Severity]:
        return self._all("/v1/severities", "severities", Severity)

    def get_severity(self, severity_id: str) -> Severity:
        path = {"id": _path_id(severity_id)}
        return self._one("GET", "/v1/severities/{id}", "severity", Severity, path)

    def list_incident_statuses(self) -> list[IncidentStatus]:
        return self._all("/v1/incident_statuses", "incident_statuses", IncidentStatus)

    def get_incident_status(self, status_id: str) -> IncidentStatus:
        path = {"id": _path_id(status_id)}
        route = "/v1/incident_statuses/{id}"
        return self._one("GET", route, "incident_status", IncidentStatus, path)

    def list_incident_types(self) -> list[IncidentType]:
        return self._all("/v1/incident_types", "incident_types", IncidentType)

    def list_incident_roles(self) -> list[IncidentRole]:
        return self._all("/v2/incident_roles", "incident_roles", IncidentRole)

    def list_custom_fields(self) -> list[CustomField]:
        return self._all("/v2/custom_fields", "custom_fields", CustomField)

    def list_custom_field_options(self, custom_field_id: str) -> list[CustomFieldOption]:
        """Every option of one select field (paged, 250 at a time)."""
        route = "/v1/custom_field_options"
        base = [("custom_field_id", _path_id(custom_field_id)), ("page_size", "250")]
        return list(self._items(route, "custom_field_options", CustomFieldOption, base))

    def list_incident_timestamps(self) -> list[IncidentTimestamp]:
        return self._all("/v2/incident_timestamps", "incident_timestamps", IncidentTimestamp)

    # --- activity ---------------------------------------------------------------

    def iter_incident_updates(
        self, incident_id: str | None = None, page_size: int = 250
    ) -> Iterator[IncidentUpdate]:
        """Status and severity changes, newest first, for one incident or all."""
        params = [("page_size", str(check_page_size(page_size)))]
        if incident_id is not None:
            params.insert(0, ("incident_id", _path_id(incident_id)))
        return self._items("/v2/incident_updates", "incident_updates", IncidentUpdate, params)

    # --- follow-ups (v3; /v2/follow_ups is removed on 2026-12-31) -----------------

    def iter_follow_ups(
        self,
        *,
        incident_id: str | None = None,
        incident_mode: str | None = None,
        assignee_team_id: str | None = None,
        created_at: TimeWindow | None = None,
        updated_at: TimeWindow | None = None,
        page_size: int = MAX_FOLLOW_UP_PAGE_SIZE,
    ) -> Iterator[FollowUp]:
        """``GET /v3/follow_ups``, oldest first, fetched lazily page by page.

        Without ``incident_mode`` the API lists follow-ups of standard and
        retrospective incidents only. A full last page may be followed by an empty
        one (the API sets ``after`` when there *may* be more): that is one more
        request, never an error. Arguments are checked now, requests start when
        iteration does.
        """
        params = follow_up_params(
            incident_id=None if incident_id is None else _path_id(incident_id),
            incident_mode=incident_mode,
            assignee_team_id=None if assignee_team_id is None else _path_id(assignee_team_id),
            created_at=created_at,
            updated_at=updated_at,
        )
        params.append(("page_size", str(check_page_size(page_size, MAX_FOLLOW_UP_PAGE_SIZE))))
        return self._items("/v3/follow_ups", "follow_ups", FollowUp, params)

    def get_follow_up(self, follow_up_id: str) -> FollowUp:
        path = {"id": _path_id(follow_up_id)}
        return self._one("GET", "/v3/follow_ups/{id}", "follow_up", FollowUp, path)

    def iter_users(
        self,
        email: str | None = None,
        slack_user_id: str | None = None,
        page_size: int = 250,
        *,
        include_inactive: bool = False,
    ) -> Iterator[User]:
        """Users; inactive ones only with ``include_inactive`` (the API leaves them out)."""
        params = [("page_size", str(check_page_size(page_size, MAX_USERS_PAGE_SIZE)))]
        if email is not None:
            params.append(("email", email))
        if slack_user_id is not None:
            params.append(("slack_user_id", slack_user_id))
        if include_inactive:
            params.append(("include_inactive", "true"))
        return self._items("/v2/users", "users", User, params)

    # --- state ------------------------------------------------------------------

    @property
    def server_time(self) -> datetime | None:
        """The ``Date`` header of the last response: the server's clock (the sandbox's fake one)."""
        return self._server_time

    @property
    def last_request_id(self) -> str | None:
        """This thread's last ``X-Request-Id``: what incident.io support asks for."""
        return getattr(self._last, "request_id", None)

    def __repr__(self) -> str:
        return f"IncidentIOClient(base_url={self.base_url!r}, rate_limiter={self.rate_limiter!r})"


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _path_id(value: str) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not _SAFE_ID.match(text):
        raise ValueError(f"not an incident.io ID: {value!r}")
    return text


def _optional_id(value: str | None) -> str | None:
    return None if value is None else _path_id(value)


def _incident_path_id(value: str) -> str:
    """The API takes the ID or the number of the reference (/v2/incidents/123 for INC-123)."""
    text = value.strip() if isinstance(value, str) else ""
    match = _REFERENCE.match(text)
    return match.group(1) if match else _path_id(text)
