"""Deliver the sandbox's events as incident.io does: signed, off the request path, retried.

The API only queues (``send``); a few worker threads POST each event to the
target URL, signed per Standard Webhooks with the ``standardwebhooks`` library:
``webhook-id`` (``msg_...``, the same on every attempt, so a receiver
de-duplicates on it), ``webhook-timestamp`` (unix seconds of this attempt, on
the sandbox's clock: incident.io signs with the same clock its ``Date`` header
shows, so a sandbox whose clock was moved signs in its own time, and a receiver
that follows the API's time, as the daemon does, still accepts it) and
``webhook-signature``.

A 2xx answer within ``timeout_seconds`` delivers; anything else (another
status, a timeout, a refused connection) is retried after the next delay of
``retry_delays``, and given up once they run out. The default schedule is the
real service's (Svix: at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h);
tests set a short one. Workers deliver concurrently, so, as with the real
service, order is not guaranteed.

Changing the target (or a sandbox reset) drops what is still queued for the
old one. At most ``MAX_PENDING`` deliveries wait; beyond that new events are
dropped and counted, so a receiver that is down for hours cannot grow the
sandbox without bound.
"""

from __future__ import annotations

import heapq
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import SecretStr

from automations.notify.channels.webhook import secret_problem
from automations.notify.config import shown_url
from automations.sandbox.model import JSON

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

# Svix's schedule after the first attempt (seconds): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
SVIX_RETRY_DELAYS = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
DEFAULT_TIMEOUT = 15.0  # Svix's: an endpoint has 15 s to answer
MAX_PENDING = 10_000
RECENT = 1_000  # deliveries kept for GET /_sandbox/webhooks
WORKERS = 4


@dataclass(frozen=True)
class WebhookTarget:
    """Where events go and how they are retried; the secret never appears in ``describe``."""

    url: str
    secret: SecretStr
    retry_delays: tuple[float, ...] = SVIX_RETRY_DELAYS
    timeout_seconds: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must start with http:// or https://, got {self.url!r}")
        problem = secret_problem(self.secret.get_secret_value())
        if problem is not None:
            raise ValueError(f"webhook secret {problem}")
        if any(delay < 0 for delay in self.retry_delays):
            raise ValueError("webhook retry_delays must be seconds >= 0")
        if not self.timeout_seconds > 0:
            raise ValueError("webhook timeout_seconds must be more than 0")

    @classmethod
    def from_payload(cls, payload: JSON) -> WebhookTarget:
        """``{url, secret, retry_delays?, timeout_seconds?}`` from the control API."""
        unknown = sorted(set(payload) - {"url", "secret", "retry_delays", "timeout_seconds"})
        if unknown:
            raise ValueError(f"unknown webhook settings: {', '.join(unknown)}")
        url, secret = payload.get("url"), payload.get("secret")
        if not isinstance(url, str) or not isinstance(secret, str):
            raise ValueError("give url and secret (whsec_...) as strings")
        delays = payload.get("retry_delays", list(SVIX_RETRY_DELAYS))
        if not isinstance(delays, list) or not all(
            isinstance(d, int | float) and not isinstance(d, bool) for d in delays
        ):
            raise ValueError("webhook retry_delays must be a list of seconds")
        timeout = payload.get("timeout_seconds", DEFAULT_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise ValueError("webhook timeout_seconds must be a number")
        return cls(url, SecretStr(secret), tuple(float(d) for d in delays), float(timeout))

    def describe(self) -> JSON:
        return {
            "url": shown_url(self.url),
            "retry_delays": list(self.retry_delays),
            "timeout_seconds": self.timeout_seconds,
        }


@dataclass
class Delivery:
    """One event to one target, through all its attempts."""

    id: str
    event_type: str
    body: bytes
    target: WebhookTarget
    generation: int
    queued_at: datetime
    state: str = "pending"  # pending | delivered | failed
    attempts: list[str] = field(default_factory=list)  # each attempt's outcome

    def describe(self) -> JSON:
        return {
            "webhook_id": self.id,
            "event_type": self.event_type,
            "state": self.state,
            "attempts": list(self.attempts),
            "queued_at": self.queued_at.isoformat(),
        }


class WebhookSender:
    """The queue and its workers; ``configure`` a target to start sending."""

    def __init__(self, clock: Callable[[], datetime], *, workers: int = WORKERS) -> None:
        self.clock = clock
        self.workers = workers
        self.target: WebhookTarget | None = None
        self._generation = 0
        self._due: list[tuple[float, int, Delivery]] = []  # (monotonic due, sequence, delivery)
        self._sequence = 0
        self._in_flight = 0
        self._recent: deque[Delivery] = deque(maxlen=RECENT)
        self._counts = {"delivered": 0, "failed": 0, "dropped": 0}
        self._cond = threading.Condition()
        self._closed = False
        self._threads: list[threading.Thread] = []

    @property
    def enabled(self) -> bool:
        return self.target is not None

    def configure(self, target: WebhookTarget | None) -> None:
        """Send to ``target`` from now on (None: stop); what was queued is dropped."""
        with self._cond:
            self.target = target
            self._generation += 1
            self._drop_queued()
            # counts and the delivery list describe the current target only
            self._counts = dict.fromkeys(self._counts, 0)
            self._recent.clear()
            self._cond.notify_all()
        if target is not None:
            self._start_workers()
            log.info("sandbox webhooks: sending every change to %s", shown_url(target.url))

    def send(self, event_type: str, body: JSON) -> None:
        """Queue one event (never blocks on the network): called on the request path."""
        with self._cond:
            if self.target is None or self._closed:
                return
            if len(self._due) + self._in_flight >= MAX_PENDING:
                self._counts["dropped"] += 1
                return
            delivery = Delivery(
                id=f"msg_{uuid.uuid4().hex}",
                event_type=event_type,
                body=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
                target=self.target,
                generation=self._generation,
                queued_at=self.clock(),
            )
            self._recent.append(delivery)
            self._push(delivery, time.monotonic())

    def describe(self) -> JSON:
        """Settings (never the secret), counts and the latest deliveries, oldest first."""
        with self._cond:
            return {
                "enabled": self.target is not None,
                "target": None if self.target is None else self.target.describe(),
                "pending": len(self._due) + self._in_flight,
                **self._counts,
                "deliveries": [d.describe() for d in self._recent],
            }

    def idle(self) -> bool:
        """Nothing queued, nothing being sent."""
        with self._cond:
            return not self._due and self._in_flight == 0

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._drop_queued()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    # -- the workers --

    def _drop_queued(self) -> None:
        for _, _, delivery in self._due:
            delivery.state = "dropped"
        self._counts["dropped"] += len(self._due)
        self._due.clear()

    def _push(self, delivery: Delivery, due: float) -> None:
        self._sequence += 1
        heapq.heappush(self._due, (due, self._sequence, delivery))
        self._cond.notify()

    def _start_workers(self) -> None:
        with self._cond:
            if self._threads or self._closed:
                return
            self._threads = [
                threading.Thread(target=self._work, name=f"sandbox-webhooks-{n}", daemon=True)
                for n in range(self.workers)
            ]
        for thread in self._threads:
            thread.start()

    def _next(self) -> Delivery | None:
        """The next due delivery, waiting for it; None once closed."""
        with self._cond:
            while not self._closed:
                if self._due:
                    wait = self._due[0][0] - time.monotonic()
                    if wait <= 0:
                        _, _, delivery = heapq.heappop(self._due)
                        self._in_flight += 1
                        return delivery
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _work(self) -> None:
        import httpx

        with httpx.Client(follow_redirects=False) as http:
            while (delivery := self._next()) is not None:
                outcome, delivered = self._attempt(http, delivery)
                self._settle(delivery, outcome, delivered)

    def _attempt(self, http: httpx.Client, delivery: Delivery) -> tuple[str, bool]:
        import httpx

        target = delivery.target
        try:
            response = http.post(
                target.url,
                content=delivery.body,
                headers=self._signed_headers(delivery),
                timeout=target.timeout_seconds,
            )
        except httpx.TimeoutException:
            return "timed out", False
        except httpx.HTTPError as exc:
            return f"cannot connect ({type(exc).__name__})", False
        return str(response.status_code), 200 <= response.status_code < 300

    def _signed_headers(self, delivery: Delivery) -> dict[str, str]:
        """Signed at this attempt's time, under the delivery's stable id."""
        from standardwebhooks import Webhook

        moment = self.clock().astimezone(UTC)
        secret = delivery.target.secret.get_secret_value()
        signature = Webhook(secret).sign(delivery.id, moment, delivery.body.decode())
        return {
            "content-type": "application/json",
            "user-agent": "automations-sandbox (incident.io webhooks)",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": signature,
        }

    def _settle(self, delivery: Delivery, outcome: str, delivered: bool) -> None:
        with self._cond:
            self._in_flight -= 1
            delivery.attempts.append(outcome)
            tried = len(delivery.attempts)
            if delivery.generation != self._generation or self._closed:
                # sent for a target since replaced: not counted against the new one
                delivery.state = "delivered" if delivered else "dropped"
                return
            if delivered:
                delivery.state = "delivered"
                self._counts["delivered"] += 1
                return
            retries = delivery.target.retry_delays
            if tried <= len(retries):
                self._push(delivery, time.monotonic() + retries[tried - 1])
                return
            delivery.state = "failed"
            self._counts["failed"] += 1
        log.warning(
            "sandbox webhooks: gave up on %s %s to %s after %d attempts (last: %s)",
            delivery.event_type,
            delivery.id,
            shown_url(delivery.target.url),
            tried,
            outcome,
        )
