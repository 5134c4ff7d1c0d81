"""The ASGI app: incident.io's routes behind one request pipeline, plus the control routes.

Every API request runs ``log -> faults -> auth -> rate limit -> handler ->
(malform) -> respond``; each step handles one concern. Every response carries
``X-Request-Id`` (the envelope's ``request_id``) and a ``Date`` header read
from the sandbox clock, so a client can learn the server's time.

Rate limiting (section 7): a 429 is ``type: rate_limit_reached`` with code
``rate_limit_reached``, a ``rate_limit{name, limit, remaining, retry_after}``
block (RFC3339, sandbox clock) and ``Retry-After`` in whole seconds. Every
authenticated response carries ``X-RateLimit-Limit`` (``1200, 1200;window=60``),
``-Remaining``, ``-Used`` and ``-Reset`` (unix seconds on the sandbox clock).
A route with a lower limit of its own (``POST /v2/escalations``: 60 a minute)
takes a token from its own bucket too; its headers then describe that bucket
and list both policies (``60, 1200;window=60, 60;window=60``), and its 429
names the route's limit (``rate_limit.name``: ``escalations``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

from pydantic_core import to_json
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from automations.sandbox import follow_ups
from automations.sandbox.control import control_routes
from automations.sandbox.errors import SandboxErrorResponse, found, invalid, required
from automations.sandbox.faults import DroppedResponse, Fault, malform
from automations.sandbox.filters import parse_incident_query, parse_page_size, scalar_params
from automations.sandbox.model import JSON, iso
from automations.sandbox.mutations import create_incident, edit_incident
from automations.sandbox.oncall_api import oncall_routes
from automations.sandbox.ratelimit import Verdict
from automations.sandbox.render import render_update
from automations.sandbox.state import SandboxConfig, SandboxState
from automations.sandbox.store import UnknownCursor
from automations.sandbox.updates import post_incident_update
from automations.sandbox.webhook_sender import WebhookTarget

logger = logging.getLogger(__name__)

Handler = Callable[[Request, Any], Awaitable[tuple[int, JSON]]]

_FAULT_CODES = {
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


def base_headers(state: SandboxState, request_id: str) -> dict[str, str]:
    return {
        "x-request-id": request_id,
        "date": format_datetime(state.clock.now(), usegmt=True),
    }


def _rate_limit_error(
    state: SandboxState, retry_after: float, form: str, limit: int, name: str = "api_key"
) -> SandboxErrorResponse:
    wait = max(1, math.ceil(retry_after))
    at = state.clock.now() + timedelta(seconds=wait)
    header = str(wait) if form == "seconds" else format_datetime(at, usegmt=True)
    return SandboxErrorResponse(
        429,
        "rate_limit_reached",
        "You have exceeded the rate limit for this API key; retry after the given time",
        rate_limit={
            "name": name,
            "limit": limit,
            "remaining": 0,
            "retry_after": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        headers={"retry-after": header},
    )


def _fault_error(state: SandboxState, fault: Fault) -> SandboxErrorResponse:
    if fault.kind == "rate_limit" or fault.status == 429:
        form = fault.form if fault.kind == "rate_limit" else "seconds"
        return _rate_limit_error(state, fault.retry_after, form, state.limiter.limit)
    code = _FAULT_CODES.get(fault.status, "injected_fault")
    type_ = "api_error" if fault.status >= 500 else None
    return SandboxErrorResponse(
        fault.status, code, f"Injected fault: HTTP {fault.status}", type_=type_
    )


def _rate_headers(
    state: SandboxState, verdict: Verdict, key_limit: int | None = None
) -> dict[str, str]:
    """The headers for ``verdict``; ``key_limit``: a route's own limit, listed with the key's."""
    reset = state.clock.now() + timedelta(seconds=verdict.full_in)
    policies = f"{verdict.limit};window=60"
    if key_limit is not None:
        policies = f"{key_limit};window=60, {policies}"
    return {
        "x-ratelimit-limit": f"{verdict.limit}, {policies}",
        "x-ratelimit-remaining": str(verdict.remaining),
        "x-ratelimit-used": str(verdict.used),
        "x-ratelimit-reset": str(math.ceil(reset.timestamp())),
    }


class Api:
    """The incident.io routes; ``endpoint`` wraps each handler in the pipeline."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def endpoint(
        self, handler: Handler, limit: str | None = None
    ) -> Callable[[Request], Awaitable[Any]]:
        """``limit``: the name of the route's own rate limit (``state.route_limiters``)."""

        async def run(request: Request) -> Any:
            return await self._pipeline(request, handler, limit)

        return run

    async def _pipeline(self, request: Request, handler: Handler, limit: str | None) -> Any:
        state = self.state
        request_id = str(uuid.uuid4())
        raw = await request.body()
        body: Any = None
        body_error = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body, body_error = raw.decode(errors="replace"), True
        entry: JSON = {
            "request_id": request_id,
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "query_pairs": [list(pair) for pair in request.query_params.multi_items()],
            "body": body,
            "status": None,
            "fault": None,
            "time": iso(state.clock.now()),
        }
        state.requests.append(entry)

        decision = state.faults.decide(request.url.path)
        if decision.latency:
            await asyncio.sleep(decision.latency)
        fault = decision.fault
        if fault is not None:
            entry["fault"] = fault.kind
        headers = base_headers(state, request_id)
        if fault is not None and fault.kind == "drop" and fault.when == "before":
            return DroppedResponse([(k.encode(), v.encode()) for k, v in headers.items()])

        try:
            if fault is not None and fault.kind in ("status", "rate_limit"):
                raise _fault_error(state, fault)
            key = self._authenticate(request)
            if fault is not None and fault.kind == "forbidden":
                raise SandboxErrorResponse(403, "forbidden", fault.message)
            verdict = state.limiter.take(key)
            headers.update(_rate_headers(state, verdict))
            if not verdict.allowed:
                raise _rate_limit_error(state, verdict.retry_after, "seconds", verdict.limit)
            if limit is not None:
                route = state.route_limiters[limit].take(key)
                headers.update(_rate_headers(state, route, verdict.limit))
                if not route.allowed:
                    raise _rate_limit_error(state, route.retry_after, "seconds", route.limit, limit)
            if body_error:
                raise SandboxErrorResponse(
                    400, "invalid_json", "The request body is not valid JSON"
                )
            status, payload = await handler(request, body)
        except SandboxErrorResponse as exc:
            status, payload = exc.status, exc.envelope(request_id)
            headers.update(exc.headers)
        except Exception:
            # a sandbox bug still answers in the envelope, so clients see a normal 500
            logger.exception("sandbox handler failed for %s %s", request.method, request.url.path)
            error = SandboxErrorResponse(
                500, "internal_error", "The sandbox failed to handle this request"
            )
            status, payload = 500, error.envelope(request_id)
        state.publish()  # off the request path: this only queues

        entry["status"] = status
        headers["date"] = format_datetime(state.clock.now(), usegmt=True)
        if fault is not None and fault.kind == "drop":
            return DroppedResponse([(k.encode(), v.encode()) for k, v in headers.items()])
        if fault is not None and fault.kind == "malformed" and status < 400:
            content, media_type = malform(fault.body, payload)
            return Response(content, status, headers, media_type)
        return Response(to_json(payload), status, headers, "application/json")

    def _authenticate(self, request: Request) -> str:
        header = request.headers.get("authorization")
        if not header:
            raise SandboxErrorResponse(
                401,
                "missing_authorization_material",
                "No authorization material provided in request",
            )
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or key.strip() != self.state.config.api_key:
            raise SandboxErrorResponse(
                401, "invalid_authorization_material", "The API key is not valid"
            )
        return key.strip()

    # -- incidents --

    async def list_incidents(self, request: Request, body: Any) -> tuple[int, JSON]:
        state = self.state
        query = parse_incident_query(
            request.query_params.multi_items(),
            state.store.catalog,
            accept_large_pages=state.config.large_page_size == "accept",
        )
        try:
            page = state.store.page(
                query.cache_key, query.predicate, query.after, query.page_size, query.newest_first
            )
        except UnknownCursor:
            raise invalid("after", f"no incident with ID {query.after!r} to page after") from None
        meta: JSON = {"page_size": query.page_size, "total_record_count": page.total}
        if page.more and page.incidents:
            meta["after"] = page.incidents[-1].id
        incidents = [state.store.render(incident) for incident in page.incidents]
        return 200, {"incidents": incidents, "pagination_meta": meta}

    async def show_incident(self, request: Request, body: Any) -> tuple[int, JSON]:
        incident = self._incident(request)
        return 200, {"incident": self.state.store.render(incident)}

    async def create_incident(self, request: Request, body: Any) -> tuple[int, JSON]:
        incident = create_incident(self.state.store, body, self.state.clock.now())
        return 200, {"incident": self.state.store.render(incident)}

    async def edit_incident(self, request: Request, body: Any) -> tuple[int, JSON]:
        incident = self._incident(request)
        edit_incident(self.state.store, incident, body, self.state.clock.now())
        return 200, {"incident": self.state.store.render(incident)}

    def _incident(self, request: Request) -> Any:
        ref = request.path_params["id"]
        return found(self.state.store.get(ref), "incident", ref)

    # -- catalog --

    async def severities(self, request: Request, body: Any) -> tuple[int, JSON]:
        return 200, {"severities": [s.to_json() for s in self.state.store.catalog.severities]}

    async def severity(self, request: Request, body: Any) -> tuple[int, JSON]:
        ref = request.path_params["id"]
        severity = found(self.state.store.catalog.severity_by_id.get(ref), "severity", ref)
        return 200, {"severity": severity.to_json()}

    async def statuses(self, request: Request, body: Any) -> tuple[int, JSON]:
        statuses = self.state.store.catalog.statuses
        return 200, {"incident_statuses": [s.to_json() for s in statuses]}

    async def status(self, request: Request, body: Any) -> tuple[int, JSON]:
        ref = request.path_params["id"]
        status = found(self.state.store.catalog.status_by_id.get(ref), "incident status", ref)
        return 200, {"incident_status": status.to_json()}

    async def types(self, request: Request, body: Any) -> tuple[int, JSON]:
        return 200, {"incident_types": [t.to_v1_json() for t in self.state.store.catalog.types]}

    async def roles(self, request: Request, body: Any) -> tuple[int, JSON]:
        return 200, {"incident_roles": [r.to_json() for r in self.state.store.catalog.roles]}

    async def custom_fields(self, request: Request, body: Any) -> tuple[int, JSON]:
        fields = self.state.store.catalog.custom_fields
        return 200, {"custom_fields": [f.to_json() for f in fields]}

    async def timestamps(self, request: Request, body: Any) -> tuple[int, JSON]:
        timestamps = self.state.store.catalog.timestamps
        return 200, {"incident_timestamps": [t.to_json() for t in timestamps]}

    async def custom_field_options(self, request: Request, body: Any) -> tuple[int, JSON]:
        """One field's options in creation order, paged like the other V1 lists.

        ``custom_field_id`` is required (422 naming it); an unknown field is 404
        and a text, link or numeric field has no options (an empty list).
        """
        catalog = self.state.store.catalog
        params = scalar_params(
            request.query_params.multi_items(), ("custom_field_id", "page_size", "after")
        )
        field_id = params.get("custom_field_id")
        if not field_id:
            raise required("custom_field_id")
        custom_field = found(catalog.field_by_id.get(field_id), "custom field", field_id)
        size = parse_page_size(params.get("page_size"), 250)
        options = custom_field.options
        start = _after_index([o.id for o in options], params.get("after"))
        chosen = options[start : start + size]
        meta: JSON = {"page_size": size}
        if start + size < len(options) and chosen:
            meta["after"] = chosen[-1].id
        rendered = [o.to_json() for o in chosen]
        return 200, {"custom_field_options": rendered, "pagination_meta": meta}

    # -- paginated side lists --

    async def incident_updates(self, request: Request, body: Any) -> tuple[int, JSON]:
        store = self.state.store
        params = scalar_params(
            request.query_params.multi_items(), ("incident_id", "page_size", "after")
        )
        size = parse_page_size(params.get("page_size"), 250)
        updates = store.updates
        if "incident_id" in params:
            incident = store.get(params["incident_id"])
            wanted = incident.id if incident else params["incident_id"]
            updates = [u for u in updates if u.incident_id == wanted]
        start = _after_index([u.id for u in updates], params.get("after"))
        chosen = updates[start : start + size]
        meta: JSON = {"page_size": size}
        if start + size < len(updates) and chosen:
            meta["after"] = chosen[-1].id
        rendered = [render_update(u, store.catalog) for u in chosen]
        return 200, {"incident_updates": rendered, "pagination_meta": meta}

    async def post_incident_update(self, request: Request, body: Any) -> tuple[int, JSON]:
        state = self.state
        update = post_incident_update(state.store, state.update_keys, body, state.clock.now())
        return 201, {"incident_update": render_update(update, state.store.catalog)}

    # -- follow-ups (automations/sandbox/follow_ups.py) --

    async def follow_ups_v3(self, request: Request, body: Any) -> tuple[int, JSON]:
        return 200, follow_ups.list_v3(self.state.store, request.query_params.multi_items())

    async def follow_up_v3(self, request: Request, body: Any) -> tuple[int, JSON]:
        return 200, follow_ups.show_v3(self.state.store, request.path_params["id"])

    async def follow_ups_v2(self, request: Request, body: Any) -> tuple[int, JSON]:
        pairs = request.query_params.multi_items()
        return 200, follow_ups.list_v2(self.state.store, pairs, self.state.clock.now())

    async def follow_up_v2(self, request: Request, body: Any) -> tuple[int, JSON]:
        ident, now = request.path_params["id"], self.state.clock.now()
        return 200, follow_ups.show_v2(self.state.store, ident, now)

    async def users(self, request: Request, body: Any) -> tuple[int, JSON]:
        catalog = self.state.store.catalog
        params = scalar_params(
            request.query_params.multi_items(),
            ("email", "slack_user_id", "page_size", "after", "include_inactive"),
        )
        size = parse_page_size(params.get("page_size"), 10_000)
        # Section 0: inactive users are left out unless include_inactive=true.
        everyone = _flag(params, "include_inactive")
        users = [
            u
            for u in catalog.users
            if (everyone or u.is_active)
            and params.get("email", u.email) == u.email
            and params.get("slack_user_id", u.slack_user_id) == u.slack_user_id
        ]
        start = _after_index([u.id for u in users], params.get("after"))
        chosen = users[start : start + size]
        # The shared PaginationMetaResultV2 caps page_size at 250 although this route
        # accepts 10,000; report the capped value so the answer stays schema-valid.
        meta: JSON = {"page_size": min(size, 250)}
        if start + size < len(users) and chosen:
            meta["after"] = chosen[-1].id
        rendered = [u.to_with_roles_json(catalog.base_roles[u.role]) for u in chosen]
        return 200, {"users": rendered, "pagination_meta": meta}


def _flag(params: dict[str, str], key: str) -> bool:
    """A boolean query parameter: absent is false; anything but true/false is 422."""
    raw = params.get(key, "false").lower()
    if raw not in ("true", "false"):
        raise invalid(key, f"{key} must be true or false, got {params[key]!r}")
    return raw == "true"


def _after_index(ids: list[str], after: str | None) -> int:
    if after is None:
        return 0
    try:
        return ids.index(after) + 1
    except ValueError:
        raise invalid("after", f"no record with ID {after!r} to page after") from None


def create_app(
    config: SandboxConfig | None = None, webhook: WebhookTarget | None = None
) -> Starlette:
    """The whole sandbox; the state lives on ``app.state.sandbox``, nowhere global.

    ``webhook``: send incident.io's events for every change there (see webhook_sender.py).
    """
    state = SandboxState(config or SandboxConfig(), webhook)
    api = Api(state)
    e = api.endpoint
    routes = [
        Route("/v2/incidents", e(api.list_incidents), methods=["GET"]),
        Route("/v2/incidents", e(api.create_incident), methods=["POST"]),
        Route("/v2/incidents/{id}", e(api.show_incident), methods=["GET"]),
        Route("/v2/incidents/{id}/actions/edit", e(api.edit_incident), methods=["POST"]),
        Route("/v1/severities", e(api.severities), methods=["GET"]),
        Route("/v1/severities/{id}", e(api.severity), methods=["GET"]),
        Route("/v1/incident_statuses", e(api.statuses), methods=["GET"]),
        Route("/v1/incident_statuses/{id}", e(api.status), methods=["GET"]),
        Route("/v1/incident_types", e(api.types), methods=["GET"]),
        Route("/v2/incident_roles", e(api.roles), methods=["GET"]),
        Route("/v2/custom_fields", e(api.custom_fields), methods=["GET"]),
        Route("/v2/incident_timestamps", e(api.timestamps), methods=["GET"]),
        Route("/v1/custom_field_options", e(api.custom_field_options), methods=["GET"]),
        Route("/v2/incident_updates", e(api.incident_updates), methods=["GET"]),
        Route("/v2/incident_updates", e(api.post_incident_update), methods=["POST"]),
        Route("/v2/follow_ups", e(api.follow_ups_v2), methods=["GET"]),
        Route("/v2/follow_ups/{id}", e(api.follow_up_v2), methods=["GET"]),
        Route("/v3/follow_ups", e(api.follow_ups_v3), methods=["GET"]),
        Route("/v3/follow_ups/{id}", e(api.follow_up_v3), methods=["GET"]),
        Route("/v2/users", e(api.users), methods=["GET"]),
        *oncall_routes(state, e),
        *control_routes(state),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        request_id = str(uuid.uuid4())
        error = SandboxErrorResponse(
            exc.status_code,
            "not_found" if exc.status_code == 404 else "method_not_allowed",
            exc.detail,
        )
        headers = {**base_headers(state, request_id), **(exc.headers or {})}
        content = to_json(error.envelope(request_id))
        return Response(content, exc.status_code, headers, "application/json")

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.state.sandbox = state
    return app
