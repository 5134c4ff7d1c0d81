"""A faithful incident.io simulator on loopback, for the demo and every test.

The API routes, bodies, error envelope, pagination, filters, idempotency and
rate limit follow ``docs/incident-io-api.md``; responses validate against the real
OpenAPI schema. Build it with ``create_app(SandboxConfig(...))`` (ASGI), run
it with ``serve(...)`` or ``SandboxThread(...).start()``.

Control endpoints (no auth, not rate limited, not faulted, not logged)::

    GET    /_sandbox                    settings, clock and this list
    POST   /_sandbox/reset              {seed, incidents, rate_limit_per_minute,
                                         large_page_size: "clamp"|"accept",
                                         now?: RFC3339, api_key?}; omitted keys take
                                         the server's start-up values
    GET    /_sandbox/clock              {now, offset_seconds}
    POST   /_sandbox/clock              {advance_seconds: n} or {now: RFC3339}
    GET    /_sandbox/faults             the active faults
    POST   /_sandbox/faults             replace them: {next: [{kind: status, status},
                                         {kind: rate_limit, retry_after, form: seconds|http-date},
                                         {kind: drop, when?: before|after},
                                         {kind: latency, seconds},
                                         {kind: malformed, body: invalid_json|html|
                                          missing_fields|unknown_enum}],
                                         paths?: prefix or [prefixes], seed?,
                                         error_rate, error_status, drop_rate,
                                         latency_seconds,
                                         rate_limit_storm: {seconds, retry_after_form}}
    DELETE /_sandbox/faults             no faults
    POST   /_sandbox/incidents          add an incident as a human would (see manual.py)
    GET    /_sandbox/incidents/{id}     any incident, by ID or number
    PATCH  /_sandbox/incidents/{id}     change it directly, bypassing lifecycle rules
    PATCH  /_sandbox/follow_ups/{id}    change a follow-up as a human would (status,
                                         title, assignee, team, priority...; see manual.py)
    GET    /_sandbox/requests           the API request log (last 10,000): request_id,
                                         method, path, query, query_pairs, body, status,
                                         fault, time
    DELETE /_sandbox/requests           clear the log
    GET    /_sandbox/webhooks           where events go (never the secret), counts
                                         (pending, delivered, failed, dropped) and the
                                         last 1,000 deliveries with each attempt's outcome
    POST   /_sandbox/webhooks           send incident.io's signed webhooks for every change:
                                         {url, secret: whsec_..., retry_delays?: [seconds],
                                          timeout_seconds?}; a reset returns to the start-up
                                         target (``--webhook-url``) and drops the queue
    DELETE /_sandbox/webhooks           stop sending

Every change to an incident or follow-up (API edits, creations, incident
updates, the manual routes above) is sent as incident.io's webhook event when a
target is set: see webhook_events.py (which events) and webhook_sender.py (how).
"""

from __future__ import annotations

from automations.sandbox.app import create_app
from automations.sandbox.server import SandboxThread, serve
from automations.sandbox.state import SandboxConfig

__all__ = ["SandboxConfig", "SandboxThread", "create_app", "serve"]
