"""The on-call routes: schedules, schedule entries, escalation paths, escalations.

Choices where the docs are silent (docs/incident-io-api.md section 0):

- Schedules and paths are listed in creation order, ``after`` = the last ID.
  ``GET /v2/schedules`` sends ``next_shifts`` only when ``page_size`` <= 25,
  as the live API does; show always sends it.
- ``GET /v2/schedule_entries`` needs ``schedule_id`` (422; unknown: 404). The
  window defaults to the sandbox's now and one week after its start. A page
  holds up to ``ENTRIES_PAGE`` final entries; when more follow,
  ``pagination_meta.after`` is the start of the first one left out, and the
  next request resends the query with ``entry_window_start=<after>``. Every
  list holds the entries overlapping the page's part of the window, so a
  shift that spans a page boundary appears on both pages (same fingerprint).
- ``POST /v2/escalations`` answers 201 for a new escalation and for a
  replayed key alike (the first escalation, unchanged). Unknown paths, users
  and incidents, and inactive users, are 422 on their body key. The
  escalation is ``triggered`` at once and notifies whom the path's first
  level pages now (its schedules' current shifts and named users), or the
  given users. Its own limit is ``ROUTE_LIMITS`` (60 a minute), on top of
  the key's 1200.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from automations.sandbox.errors import (
    body_object,
    found,
    invalid,
    required,
)
from automations.sandbox.filters import parse_page_size, parse_when, scalar_params
from automations.sandbox.model import JSON, iso
from automations.sandbox.mutations import _string, idempotency_key
from automations.sandbox.oncall import (
    ESCALATIONS_LIMIT,
    Escalation,
    render_entry,
    render_escalation,
    render_path,
    render_schedule,
)
from automations.sandbox.rotations import (
    Entry,
    final_entries,
    override_entries,
    scheduled_entries,
)
from automations.sandbox.state import SandboxState

MAX_SCHEDULES_PAGE = 10_000
NEXT_SHIFTS_UP_TO = 25  # larger schedule pages leave next_shifts out
MAX_PATHS_PAGE = 25
ENTRIES_PAGE = 100
DEFAULT_WINDOW = timedelta(days=7)

Handler = Callable[[Request, Any], Awaitable[tuple[int, JSON]]]
Endpoint = Callable[..., Callable[[Request], Awaitable[Any]]]


def _page(ids: list[str], after: str | None, size: int) -> tuple[int, int, JSON]:
    """Start and end of a page of ``ids`` after ``after``, and its pagination_meta."""
    start = 0
    if after is not None:
        if after not in ids:
            raise invalid("after", f"no record with ID {after!r} to page after")
        start = ids.index(after) + 1
    end = min(start + size, len(ids))
    # PaginationMetaResultV2 caps page_size at 250 whatever the route accepts
    meta: JSON = {"page_size": min(size, 250)}
    if end < len(ids):
        meta["after"] = ids[end - 1]
    return start, end, meta


class OnCallApi:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def schedules(self, request: Request, body: Any) -> tuple[int, JSON]:
        state = self.state
        params = scalar_params(request.query_params.multi_items(), ("page_size", "after"))
        size = parse_page_size(params.get("page_size"), MAX_SCHEDULES_PAGE)
        schedules = state.oncall.schedules
        start, end, meta = _page([s.id for s in schedules], params.get("after"), size)
        meta["total_record_count"] = len(schedules)
        now, catalog = state.clock.now(), state.store.catalog
        rendered = [
            render_schedule(s, catalog, now, with_next=size <= NEXT_SHIFTS_UP_TO)
            for s in schedules[start:end]
        ]
        return 200, {"schedules": rendered, "pagination_meta": meta}

    async def schedule(self, request: Request, body: Any) -> tuple[int, JSON]:
        state = self.state
        ref = request.path_params["id"]
        schedule = found(state.oncall.schedule(ref), "schedule", ref)
        rendered = render_schedule(schedule, state.store.catalog, state.clock.now(), with_next=True)
        return 200, {"schedule": rendered}

    async def schedule_entries(self, request: Request, body: Any) -> tuple[int, JSON]:
        state = self.state
        params = scalar_params(
            request.query_params.multi_items(),
            ("schedule_id", "entry_window_start", "entry_window_end"),
        )
        schedule_id = params.get("schedule_id")
        if not schedule_id:
            raise required("schedule_id")
        schedule = found(state.oncall.schedule(schedule_id), "schedule", schedule_id)
        start = _when(params, "entry_window_start") or state.clock.now()
        end = _when(params, "entry_window_end") or start + DEFAULT_WINDOW
        if end <= start:
            raise invalid("entry_window_end", "entry_window_end must be after entry_window_start")
        final = list(islice(final_entries(schedule, start, end), ENTRIES_PAGE + 1))
        cut = end
        if len(final) > ENTRIES_PAGE:
            cut = max(final[ENTRIES_PAGE].start_at, start + timedelta(microseconds=1))
            final = [e for e in final if e.start_at < cut]
        catalog = state.store.catalog

        def render(entries: list[Entry]) -> list[JSON]:
            return [render_entry(schedule, e, catalog) for e in entries]

        result: JSON = {
            "schedule_entries": {
                "scheduled": render(list(scheduled_entries(schedule, start, cut))),
                "overrides": render(override_entries(schedule, start, cut)),
                "final": render(final),
            }
        }
        if cut < end:
            after = iso(cut)
            next_url = request.url.include_query_params(entry_window_start=after)
            result["pagination_meta"] = {"after": after, "after_url": str(next_url)}
        return 200, result

    async def escalation_paths(self, request: Request, body: Any) -> tuple[int, JSON]:
        state = self.state
        params = scalar_params(request.query_params.multi_items(), ("page_size", "after"))
        size = parse_page_size(params.get("page_size"), MAX_PATHS_PAGE)
        paths = state.oncall.paths
        start, end, meta = _page([p.id for p in paths], params.get("after"), size)
        now, catalog = state.clock.now(), state.store.catalog
        rendered = [render_path(p, state.oncall, catalog, now) for p in paths[start:end]]
        return 200, {"escalation_paths": rendered, "pagination_meta": meta}

    async def create_escalation(self, request: Request, body: Any) -> tuple[int, JSON]:
        state = self.state
        escalation = self._escalation(body, state.clock.now())
        incident = state.store.get(escalation.incident_id) if escalation.incident_id else None
        return 201, {"escalation": render_escalation(escalation, state.store.catalog, incident)}

    def _escalation(self, payload: Any, now: datetime) -> Escalation:
        """Validate the whole body, then create; a replayed key returns the first escalation."""
        oncall, store = self.state.oncall, self.state.store
        payload = body_object(payload)
        key = idempotency_key(payload)
        if key in oncall.escalation_keys:
            return oncall.escalation_keys[key]
        title = _string(payload, "title", allow_empty=False)
        if title is None:
            raise required("title")
        description = _string(payload, "description") or ""
        path_id = _string(payload, "escalation_path_id", allow_empty=False)
        user_ids = payload.get("user_ids")
        if (path_id is None) == (user_ids is None):
            raise invalid(
                "escalation_path_id", "give exactly one of escalation_path_id or user_ids"
            )
        if path_id is not None:
            path = oncall.path(path_id)
            if path is None:
                raise invalid("escalation_path_id", f"no escalation path with ID {path_id!r}")
            notified = tuple(oncall.responders(path.levels[0], now))
        else:
            notified = self._users(user_ids)
        incident_id = _string(payload, "incident_id", allow_empty=False)
        if incident_id is not None:
            incident = store.get(incident_id)
            if incident is None:
                raise invalid("incident_id", f"no incident with ID {incident_id!r}")
            incident_id = incident.id
        escalation = Escalation(
            id=oncall.new_id(),
            title=title,
            description=description,
            status="triggered",
            created_at=now,
            notified_user_ids=notified,
            event_ids=(oncall.new_id(), oncall.new_id()),
            escalation_path_id=path_id,
            incident_id=incident_id,
        )
        oncall.escalations.append(escalation)
        oncall.escalation_keys[key] = escalation
        return escalation

    def _users(self, user_ids: Any) -> tuple[str, ...]:
        if not isinstance(user_ids, list) or not user_ids:
            raise invalid("user_ids", "user_ids must be a non-empty list of user IDs")
        users = self.state.store.catalog.user_by_id
        for user_id in user_ids:
            if not isinstance(user_id, str) or user_id not in users:
                raise invalid("user_ids", f"no user with ID {user_id!r}")
            if not users[user_id].is_active:
                raise invalid("user_ids", f"user {user_id!r} is not active and cannot be paged")
        return tuple(dict.fromkeys(user_ids))


def _when(params: dict[str, str], key: str) -> datetime | None:
    return parse_when(key, params[key]) if params.get(key) else None


def oncall_routes(state: SandboxState, endpoint: Endpoint) -> list[Route]:
    """The routes, each behind the API pipeline (``endpoint``); escalations also
    behind their own rate limit."""
    api = OnCallApi(state)
    return [
        Route("/v2/schedules", endpoint(api.schedules), methods=["GET"]),
        Route("/v2/schedules/{id}", endpoint(api.schedule), methods=["GET"]),
        Route("/v2/schedule_entries", endpoint(api.schedule_entries), methods=["GET"]),
        Route("/v2/escalation_paths", endpoint(api.escalation_paths), methods=["GET"]),
        Route(
            "/v2/escalations",
            endpoint(api.create_escalation, limit=ESCALATIONS_LIMIT),
            methods=["POST"],
        ),
    ]
