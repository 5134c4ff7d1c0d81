"""The ``/_sandbox/`` control routes: reset, clock, faults, manual edits, request log, webhooks.

They need no auth, are never rate limited or faulted, and are not logged in
the request log. Errors use the API's envelope (422 ``validation_error``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from email.utils import format_datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from automations.sandbox.errors import SandboxErrorResponse, body_object, found, invalid
from automations.sandbox.faults import FaultConfigError, FaultPlan
from automations.sandbox.filters import parse_when
from automations.sandbox.manual import apply_manual, change_follow_up
from automations.sandbox.model import JSON, Incident
from automations.sandbox.render import render_follow_up_v3
from automations.sandbox.state import SandboxState
from automations.sandbox.webhook_sender import WebhookTarget

ENDPOINTS = (
    "GET /_sandbox",
    "POST /_sandbox/reset",
    "GET /_sandbox/clock",
    "POST /_sandbox/clock",
    "GET /_sandbox/faults",
    "POST /_sandbox/faults",
    "DELETE /_sandbox/faults",
    "POST /_sandbox/incidents",
    "GET /_sandbox/incidents/{id}",
    "PATCH /_sandbox/incidents/{id}",
    "PATCH /_sandbox/follow_ups/{id}",
    "GET /_sandbox/requests",
    "DELETE /_sandbox/requests",
    "GET /_sandbox/webhooks",
    "POST /_sandbox/webhooks",
    "DELETE /_sandbox/webhooks",
)


class Control:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def wrap(
        self, handler: Callable[[Request, JSON], tuple[int, JSON]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            request_id = str(uuid.uuid4())
            raw = await request.body()
            try:
                body = body_object(json.loads(raw) if raw else None)
                status, payload = handler(request, body)
            except ValueError as exc:
                # json errors and config validation both land here
                status, payload = 422, invalid("body", str(exc)).envelope(request_id)
            except SandboxErrorResponse as exc:
                status, payload = exc.status, exc.envelope(request_id)
            self.state.publish()  # a change made "in the app" is sent like any other
            headers = {
                "x-request-id": request_id,
                "date": format_datetime(self.state.clock.now(), usegmt=True),
            }
            content = b"" if status == 204 else json.dumps(payload).encode()
            return Response(content, status, headers, "application/json")

        return run

    def summary(self, request: Request, body: JSON) -> tuple[int, JSON]:
        return 200, {**self.state.describe(), "endpoints": list(ENDPOINTS)}

    def reset(self, request: Request, body: JSON) -> tuple[int, JSON]:
        overrides = dict(body)
        if isinstance(overrides.get("now"), str):
            overrides["now"] = parse_when("now", overrides["now"])
        self.state.reset(self.state.defaults.with_overrides(overrides))
        return 200, self.state.describe()

    def clock(self, request: Request, body: JSON) -> tuple[int, JSON]:
        clock = self.state.clock
        if request.method == "POST":
            if "advance_seconds" in body:
                seconds = body["advance_seconds"]
                if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                    raise invalid("advance_seconds", "advance_seconds must be a number")
                clock.advance(float(seconds))
            elif isinstance(body.get("now"), str):
                clock.set(parse_when("now", body["now"]))
            else:
                raise invalid("body", "give advance_seconds (number) or now (RFC3339)")
        return 200, {
            "now": clock.now().isoformat(),
            "offset_seconds": clock.offset / timedelta(seconds=1),
        }

    def faults(self, request: Request, body: JSON) -> tuple[int, JSON]:
        state = self.state
        if request.method in ("POST", "DELETE"):
            payload = body if request.method == "POST" else {}
            try:
                state.faults = FaultPlan.from_payload(payload, state.config.seed)
            except FaultConfigError as exc:
                raise invalid("faults", str(exc)) from None
        return 200, state.faults.describe()

    def add_incident(self, request: Request, body: JSON) -> tuple[int, JSON]:
        store, catalog, now = self.state.store, self.state.store.catalog, self.state.clock.now()
        number = store.next_number()
        incident = Incident(
            id=store.new_id(),
            number=number,
            name=f"Incident {number}",
            status_id=catalog.first_status("live").id,
            visibility="public",
            mode="standard",
            creator={"user": catalog.users[0].to_json()},
            created_at=now,
            updated_at=now,
            severity_id=min(catalog.severities, key=lambda s: s.rank).id,
            type_id=catalog.default_type().id,
        )
        apply_manual(store, incident, body, now, creating=True)
        store.add(incident)
        return 201, {"incident": store.render(incident)}

    def incident(self, request: Request, body: JSON) -> tuple[int, JSON]:
        store = self.state.store
        ref = request.path_params["id"]
        incident = found(store.get(ref), "incident", ref)
        if request.method == "PATCH":
            created = incident.created_at
            apply_manual(store, incident, body, self.state.clock.now(), creating=False)
            store.touch(incident, reorder=incident.created_at != created)
        return 200, {"incident": store.render(incident)}

    def follow_up(self, request: Request, body: JSON) -> tuple[int, JSON]:
        """Change one follow-up as a human would in the app; answers its FollowUpV3."""
        store = self.state.store
        ref = request.path_params["id"]
        follow_up = found(store.follow_up(ref), "follow-up", ref)
        change_follow_up(store, follow_up, body, self.state.clock.now())
        return 200, {"follow_up": render_follow_up_v3(follow_up, store.catalog)}

    def requests(self, request: Request, body: JSON) -> tuple[int, JSON]:
        if request.method == "DELETE":
            self.state.requests.clear()
        return 200, {"requests": list(self.state.requests)}

    def webhooks(self, request: Request, body: JSON) -> tuple[int, JSON]:
        """Where events go (POST {url, secret, retry_delays?, timeout_seconds?}; DELETE: off)."""
        sender = self.state.webhooks
        if request.method == "POST":
            sender.configure(WebhookTarget.from_payload(body))
        elif request.method == "DELETE":
            sender.configure(None)
        return 200, sender.describe()


def control_routes(state: SandboxState) -> list[Route]:
    control = Control(state)
    w = control.wrap
    return [
        Route("/_sandbox", w(control.summary), methods=["GET"]),
        Route("/_sandbox/reset", w(control.reset), methods=["POST"]),
        Route("/_sandbox/clock", w(control.clock), methods=["GET", "POST"]),
        Route("/_sandbox/faults", w(control.faults), methods=["GET", "POST", "DELETE"]),
        Route("/_sandbox/incidents", w(control.add_incident), methods=["POST"]),
        Route("/_sandbox/incidents/{id}", w(control.incident), methods=["GET", "PATCH"]),
        Route("/_sandbox/follow_ups/{id}", w(control.follow_up), methods=["PATCH"]),
        Route("/_sandbox/requests", w(control.requests), methods=["GET", "DELETE"]),
        Route("/_sandbox/webhooks", w(control.webhooks), methods=["GET", "POST", "DELETE"]),
    ]
