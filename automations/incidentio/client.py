"""The incident.io REST client: one method per call the product makes.

Each call reads top to bottom like httpx's own send chain::

    method -> _call (retries, one log line) -> _attempt (token, HTTP, counter)
           -> transport_errors (status -> exception) -> models (body -> objects)

Synchronous on purpose: the daemon runs jobs in APScheduler threads, and one
``httpx.Client`` (connection pool) is safe to share between them.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast
from urllib.parse import quote

import httpx
import stamina
from pydantic import BaseModel, SecretStr, ValidationError

from automations import __version__
from automations.clock import skew_problem
from automations.closing import Closing
from automations.errors import APIError, ClockSkew, ConfigError, PaginationLoop, TooManyPages
from automations.incidentio.filters import IncidentFilter
from automations.incidentio.follow_ups import (
    MAX_FOLLOW_UP_PAGE_SIZE,
    TimeWindow,
    follow_up_params,
)
from automations.incidentio.metrics import RequestCounter
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
    Malformed,
    PaginationMeta,
    Severity,
    User,
    envelope,
    parse_page_leniently,
    parse_without_gc,
)
from automations.incidentio.oncall import (
    Escalation,
    EscalationPath,
    Schedule,
    ScheduleEntriesPage,
    ScheduleEntry,
)
from automations.incidentio.pagination import (
    MAX_PAGE_SIZE,
    MAX_PAGES,
    IncidentPage,
    Page,
    check_page_size,
    paginate,
    unique_incidents,
)
from automations.incidentio.payloads import (
    EscalationCreate,
    IncidentCreate,
    IncidentEdit,
    IncidentUpdateCreate,
)
from automations.incidentio.ratelimit import TokenBucket
from automations.incidentio.redaction import Redactor, strip_userinfo
from automations.incidentio.retries import (
    MAX_RETRY_AFTER,
    CallState,
    RetryPolicy,
    RetryWaits,
    log_outcome,
)
from automations.incidentio.transport_errors import (
    error_from_response,
    error_from_transport,
    request_id,
    server_time,
    unreadable_body,
)

LOG = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")

MAX_USERS_PAGE_SIZE = 10_000
MAX_SCHEDULES_PAGE_SIZE = 10_000
MAX_PATHS_PAGE_SIZE = 25
ESCALATIONS_ROUTE = "/v2/escalations"
# POST /v2/escalations allows 60 a minute per key: stay under it as the 1000 stays under 1200.
ESCALATIONS_PER_MINUTE = 50
MAX_NAMED_MALFORMED = 5  # warnings naming one malformed incident each, per page
_REFERENCE = re.compile(r"^(?:INC-)?(\d+)$", re.IGNORECASE)
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+$")


class IncidentIOClient(Closing):
    """Talks to incident.io (or the sandbox) with retries, a shared rate limit and counters.

    Give every client in the process the same ``TokenBucket`` (and
    ``RequestCounter``, and ``escalations_rate_limiter``) to share them;
    ``requests_per_minute`` only sizes a private bucket when none is passed.
    ``stopping`` (the daemon's stop event) cuts every wait short, for a retry
    or a token: a stop is not held back by a Retry-After. ``retry_waits`` is the
    backoff between attempts (``RetryWaits()``: 0.5 s doubling to 30 s, plus jitter).
    """

    def __init__(
        self,
        *,
        base_url: str = "https://api.incident.io",
        api_key: SecretStr | str,
        requests_per_minute: float = 1000,
        rate_limiter: TokenBucket | None = None,
        timeout: float = 30.0,
        connect_timeout: float | None = None,
        retry_attempts: int = 8,
        retry_timeout: float = 120.0,
        retry_waits: RetryWaits | None = None,
        transport: httpx.BaseTransport | None = None,
        counter: RequestCounter | None = None,
        max_clock_skew: timedelta | None = None,
        stopping: threading.Event | None = None,
        escalations_rate_limiter: TokenBucket | None = None,
    ) -> None:
        key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        secret = key.get_secret_value().strip()
        if not secret:
            raise ConfigError("the incident.io API key is empty (set INCIDENT_IO_API_KEY)")
        if not secret.isascii() or not secret.isprintable() or any(c.isspace() for c in secret):
            # h11 would refuse the header and quote the value in its error.
            raise ConfigError("the incident.io API key contains spaces or control characters")
        if not re.match(r"^https?://[^/\s]+", base_url):
            raise ConfigError(f"base_url must be an http(s) URL, got {strip_userinfo(base_url)!r}")
        if retry_attempts < 1 or retry_timeout <= 0 or timeout <= 0:
            raise ConfigError("retry_attempts must be >= 1; retry_timeout and timeout > 0")
        self.base_url = _without_userinfo(base_url.rstrip("/"))
        self._api_key = SecretStr(secret)
        self._redactor = Redactor([secret])
        self.rate_limiter = rate_limiter or TokenBucket(requests_per_minute)
        # Routes with a lower limit of their own take a token here too (each attempt).
        self.route_limiters = {
            ("POST", ESCALATIONS_ROUTE): escalations_rate_limiter
            or TokenBucket(ESCALATIONS_PER_MINUTE)
        }
        self.counter = counter or RequestCounter()
        self._retry = RetryPolicy(retry_attempts, retry_timeout, retry_waits or RetryWaits())
        self._server_time: datetime | None = None
        self.max_clock_skew = max_clock_skew  # None: follow the API's Date however far off
        self._last = threading.local()
        self.stopping = stopping
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=_BearerAuth(self._api_key),
            headers={"User-Agent": f"automations/{__version__}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=connect_timeout or timeout),
            transport=transport,
            follow_redirects=False,
        )

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

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"IncidentIOClient(base_url={self.base_url!r}, rate_limiter={self.rate_limiter!r})"

    # --- request plumbing -------------------------------------------------------

    def _one(
        self,
        method: str,
        route: str,
        key: str,
        model: type[M],
        path: Mapping[str, str] | None = None,
        *,
        body: dict[str, Any] | None = None,
        retry: bool = True,
    ) -> M:
        wrapper = envelope(key, model, many=False)
        parsed = self._call(
            method, route, path, None, body, wrapper.model_validate_json, retry=retry
        )
        return cast(M, getattr(parsed, key))

    def _list(
        self, route: str, key: str, model: type[M], params: list[tuple[str, str]]
    ) -> tuple[list[M], PaginationMeta | None]:
        parse = functools.partial(parse_without_gc, envelope(key, model, many=True))
        parsed = self._call("GET", route, None, params, None, parse)
        return cast(list[M], getattr(parsed, key)), parsed.pagination_meta  # type: ignore[attr-defined]

    def _all(
        self, route: str, key: str, model: type[M], params: list[tuple[str, str]] | None = None
    ) -> list[M]:
        return self._list(route, key, model, params or [])[0]

    def _pages(
        self,
        route: str,
        key: str,
        model: type[M],
        base: list[tuple[str, str]],
        *,
        lenient: bool = False,
    ) -> Iterator[Page[M]]:
        """Every page; ``lenient``: malformed items are skipped and reported, not fatal."""

        def fetch(after: str | None) -> tuple[Sequence[M], PaginationMeta | None]:
            params = base + ([("after", after)] if after else [])
            if not lenient:
                return self._list(route, key, model, params)
            parse = functools.partial(parse_page_leniently, key, model)
            page = self._call("GET", route, None, params, None, parse)
            self._report_malformed(route, page.malformed)
            return page.items, page.pagination_meta

        page_size = int(dict(base).get("page_size", MAX_PAGE_SIZE))
        clean = self._redactor.clean
        return paginate(
            fetch, _item_id, method="GET", route=route, page_size=page_size, clean=clean
        )

    def _check_server_time(self, response: httpx.Response, method: str, route: str) -> None:
        """Adopt the response's Date as the server's time, unless it is beyond max_clock_skew.

        Beyond it the answer is refused (ClockSkew, not retried): acting on a
        Date from another year would escalate everything at once.
        """
        served = server_time(response)
        if served is None:
            return
        problem = skew_problem(served, self.max_clock_skew)
        if problem is not None:
            raise ClockSkew(
                f"{method} {route}: {problem}",
                status=response.status_code,
                request_id=request_id(response.headers, None, self._redactor),
                method=method,
                route=route,
            )
        self._server_time = served

    def _report_malformed(self, route: str, malformed: Sequence[Malformed]) -> None:
        """A warning per item left out (naming it and what was wrong), counted for /metrics.

        At most MAX_NAMED_MALFORMED lines per page; one more line covers the rest.
        """
        if not malformed:
            return
        self.counter.record_malformed("GET", route, len(malformed))
        for item in malformed[:MAX_NAMED_MALFORMED]:
            what = self._redactor.clean("; ".join(item.problems))
            if item.id is not None:
                LOG.warning(
                    "GET %s: skipped malformed incident %s (%s); the rest of the page is used",
                    route,
                    self._redactor.clean(item.id, 60),
                    what,
                )
            else:
                LOG.warning(
                    "GET %s: skipped a malformed incident without an ID (item %d of the page: "
                    "%s); the rest of the page is used",
                    route,
                    item.index + 1,
                    what,
                )
        rest = malformed[MAX_NAMED_MALFORMED:]
        if rest:
            named = [self._redactor.clean(m.id, 60) for m in rest[:10] if m.id is not None]
            LOG.warning(
                "GET %s: skipped %d more malformed incidents on the same page (%s)",
                route,
                len(rest),
                ", ".join(named) + (", ..." if len(rest) > len(named) else ""),
            )

    def _schedule_entries(self, schedule_id: str, start: str, end: str) -> Iterator[ScheduleEntry]:
        """Follow the time cursor of ``GET /v2/schedule_entries``, with the listing guards."""
        route = "/v2/schedule_entries"
        parse = ScheduleEntriesPage.model_validate_json
        seen: set[tuple[Any, ...]] = set()
        cursors = {start}
        window_start = start
        for pages in range(1, MAX_PAGES + 1):
            params = [
                ("schedule_id", schedule_id),
                ("entry_window_start", window_start),
                ("entry_window_end", end),
            ]
            page = self._call("GET", route, None, params, None, parse)
            for entry in page.schedule_entries.final:
                if entry.key not in seen:
                    seen.add(entry.key)
                    yield entry
            after = page.pagination_meta.after if page.pagination_meta is not None else None
            if not after:
                return
            if after in cursors:
                raise PaginationLoop(
                    f"GET {route}: the API returned cursor {self._redactor.clean(after)!r} "
                    f"twice; stopping after {pages} pages instead of looping",
                    method="GET",
                    route=route,
                )
            cursors.add(after)
            window_start = after
        raise TooManyPages(
            f"GET {route}: still handing out new cursors after {MAX_PAGES} pages; "
            "stopping instead of paging forever",
            method="GET",
            route=route,
        )

    def _items(
        self, route: str, key: str, model: type[M], base: list[tuple[str, str]]
    ) -> Iterator[M]:
        return (item for page in self._pages(route, key, model, base) for item in page.items)

    def _call(
        self,
        method: str,
        route: str,
        path_params: Mapping[str, str] | None,
        params: list[tuple[str, str]] | None,
        body: dict[str, Any] | None,
        parse: Callable[[bytes], R],
        *,
        retry: bool = True,
    ) -> R:
        """One API call, with retries unless ``retry`` is False; logs once, however many
        attempts it took."""
        path = route.format(**{k: quote(v, safe="") for k, v in (path_params or {}).items()})
        call = CallState(method, route)
        attempt: Callable[..., R] = self._attempt
        if retry:
            attempt = stamina.retry(
                on=functools.partial(self._retry.wait, call, stop=self.stopping),
                attempts=self._retry.attempts,
                timeout=self._retry.timeout,
            )(self._attempt)
        try:
            result = attempt(call, path, params, body, parse)
        except APIError as exc:
            exc.base_url, exc.attempts = self.base_url, call.attempts
            exc.elapsed = time.monotonic() - call.started
            log_outcome(call, exc)
            raise
        log_outcome(call, None)
        return result

    def _attempt(
        self,
        call: CallState,
        path: str,
        params: list[tuple[str, str]] | None,
        body: dict[str, Any] | None,
        parse: Callable[[bytes], R],
    ) -> R:
        """One HTTP attempt: a token, the request, the count, then status and body checks."""
        call.attempts += 1
        method, route = call.method, call.route
        self.rate_limiter.acquire(self.stopping)
        route_limiter = self.route_limiters.get((method, route))
        if route_limiter is not None:
            route_limiter.acquire(self.stopping)
        started = time.monotonic()
        try:
            response = self._http.request(method, path, params=tuple(params or ()), json=body)
        except httpx.HTTPError as exc:
            call.statuses.append("error")
            self.counter.record(method, route, "error", time.monotonic() - started)
            unavailable = error_from_transport(exc, method, route, self._redactor)
            # Keep the cause for the traceback unless its text had to be redacted.
            raise unavailable from (None if self._redactor.leaks(str(exc)) else exc)
        call.statuses.append(str(response.status_code))
        self._last.request_id = request_id(response.headers, None, self._redactor)
        self.counter.record(method, route, response.status_code, time.monotonic() - started)
        self._check_server_time(response, method, route)
        if not response.is_success:
            error = error_from_response(response, method, route, self._redactor)
            if response.status_code == 429 and error.retry_after:
                # a route with its own limit pauses only itself: the rest of the key is fine
                paused = route_limiter or self.rate_limiter
                paused.defer(min(error.retry_after, MAX_RETRY_AFTER))
            raise error
        try:
            return parse(response.content)
        except ValidationError as exc:
            call.statuses[-1] += "-unreadable"
            raise unreadable_body(response, method, route, exc, self._redactor) from exc


class _BearerAuth(httpx.Auth):
    """Adds the key at send time; it lives nowhere else on the client."""

    def __init__(self, key: SecretStr) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return "_BearerAuth(**********)"


def _without_userinfo(base_url: str) -> str:
    """The key is the only credential the API takes; user:password in the URL would only leak.

    httpx never sends it (the Bearer auth wins) but prints it in every request
    log line, so it is dropped here, once, with a warning that says why.
    """
    stripped = strip_userinfo(base_url)
    if stripped != base_url:
        LOG.warning(
            "base_url %s carried user:password, which the incident.io client never sends "
            "(the API key is its only credential); removed so it is not printed",
            stripped,
        )
    return stripped


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _item_id(item: Any) -> str:
    return str(item.id)


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
