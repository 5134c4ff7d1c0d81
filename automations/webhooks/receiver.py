"""One POST to the webhook path: verify, record, answer; the worker does the rest.

Called by the ``[server]`` listener (automations/health_server.py) once the
body is in, which it reads only up to ``max_body_bytes`` (413 beyond, before
anything is verified). Answers:

- 401: unsigned, badly signed or stale (nothing recorded; logged at most once a
  minute, with our reason and a count, never a header, secret or body);
- 400: signed, but not an incident.io event we can read;
- 200: recorded and queued for the worker, or a duplicate of a recorded one
  (``webhook-id`` seen before: not processed again), or a type we ignore;
- 503: the ledger could not record it (incident.io retries).

Recording is one SQLite insert, so the answer leaves within milliseconds;
nothing here calls the API.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from automations.clock import Clock
from automations.errors import (
    LedgerError,
    MalformedWebhookEvent,
    WebhookNotJSON,
    WebhookRefused,
)
from automations.ledger.webhooks import WebhookDeliveryStore
from automations.text import one_line
from automations.webhooks.events import HANDLED, event_type_of, parse_event
from automations.webhooks.verify import Verifier

log = logging.getLogger(__name__)

Answer = tuple[int, str, bytes]  # status, content type, body: as the listener answers
Observe = Callable[[str, str], None]  # (event type, outcome) -> the metrics counter
UNVERIFIED = "unverified"  # the event type label of what was never verified
OTHER = "other"  # the label of verified types we do not handle
REFUSAL_LOG_EVERY = 60.0  # seconds


class RefusalLog:
    """At most one line a minute about refused requests, counting the ones it did not log."""

    def __init__(self, every: float = REFUSAL_LOG_EVERY) -> None:
        self.every = every
        self._lock = threading.Lock()
        self._last: float | None = None
        self._unlogged = 0

    def refused(self, status: int, reason: str, hint: str) -> None:
        now = time.monotonic()
        with self._lock:
            if self._last is not None and now - self._last < self.every:
                self._unlogged += 1
                return
            self._last, unlogged, self._unlogged = now, self._unlogged, 0
        more = f"; {unlogged} more refused in the last minute (not logged)" if unlogged else ""
        log.warning("webhook refused (%d): %s; nothing recorded%s. %s", status, reason, more, hint)


class WebhookReceiver:
    """The listener's handler for ``[webhooks] path``."""

    def __init__(
        self,
        *,
        path: str,
        max_body_bytes: int,
        verifier: Verifier,
        deliveries: WebhookDeliveryStore,
        clock: Clock,
        on_queued: Callable[[], None] = lambda: None,
        observe: Observe | None = None,
    ) -> None:
        self.path = path.encode()
        self.max_body_bytes = max_body_bytes
        self.verifier = verifier
        self.deliveries = deliveries
        self.clock = clock
        self.on_queued = on_queued  # wakes the worker
        self.observe: Observe = observe or (lambda _type, _outcome: None)
        self.refusals = RefusalLog()
        self._ignored_types: set[str] = set()
        self._lock = threading.Lock()

    def too_large(self) -> Answer:
        """The listener saw a body over the limit (declared or sent): 413, not verified."""
        self.observe(UNVERIFIED, "too_large")
        self.refusals.refused(
            413,
            f"the body is over [webhooks] max_body_bytes = {self.max_body_bytes}",
            "If incident.io sends deliveries this large, raise the limit",
        )
        return 413, "text/plain", f"too large: at most {self.max_body_bytes} bytes\n".encode()

    def receive(self, headers: Mapping[str, str], body: bytes) -> Answer:
        """Verify and record one delivery (``headers`` with lower-case names)."""
        try:
            verified = self.verifier.verify(body, headers)
        except WebhookRefused as exc:
            self.observe(UNVERIFIED, "refused")
            self.refusals.refused(
                401,
                exc.reason,
                "Check the endpoint's signing secret in incident.io against "
                "AUTOMATIONS_WEBHOOK_SECRET, and this host's clock",
            )
            return 401, "text/plain", b"unauthorized: the delivery did not verify\n"
        except WebhookNotJSON as exc:
            return self._malformed(UNVERIFIED, str(exc))
        try:
            event_type = event_type_of(verified.body)
            event = parse_event(verified.body)
        except MalformedWebhookEvent as exc:
            return self._malformed(OTHER, str(exc))
        if event is None:
            self._ignore(event_type)
            return 200, "text/plain", b"ignored: this event type is not handled\n"
        try:
            fresh = self.deliveries.record(
                webhook_id=verified.webhook_id,
                event_type=event.event_type,
                incident_id=event.incident_id,
                follow_up_id=event.follow_up_id,
                now=self.clock(),
            )
        except LedgerError as exc:
            self.observe(event.event_type, "error")
            log.error("webhook %s not recorded, incident.io will retry it: %s", event_type, exc)
            return 503, "text/plain", b"not recorded: retry later\n"
        if not fresh:
            self.observe(event.event_type, "duplicate")
            log.debug("webhook %s: a duplicate of a delivery already received", verified.webhook_id)
            return 200, "text/plain", b"duplicate: already received\n"
        self.observe(event.event_type, "accepted")
        self.on_queued()
        return 200, "text/plain", b"queued\n"

    def _malformed(self, label: str, why: str) -> Answer:
        self.observe(label, "malformed")
        log.warning("webhook refused (400): %s; nothing recorded", why)
        return 400, "text/plain", b"bad request: not an incident.io event\n"

    def _ignore(self, event_type: str) -> None:
        """Acknowledged, not acted on; one log line per type."""
        self.observe(event_type if event_type in HANDLED else OTHER, "ignored")
        with self._lock:
            first = event_type not in self._ignored_types and len(self._ignored_types) < 100
            if first:
                self._ignored_types.add(event_type)
        if first:
            log.info(
                "webhook: ignoring %s events (acknowledged; only incident and follow-up "
                "events are acted on); untick them in incident.io to save the traffic",
                one_line(event_type, 100),
            )
