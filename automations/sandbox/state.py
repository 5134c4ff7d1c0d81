"""Configuration and the one mutable object a running sandbox owns.

``create_app`` builds a ``SandboxState`` from a ``SandboxConfig``; a reset
swaps in a fresh organisation, clock, limiter, faults and request log, so no
state survives in module globals. The webhook sender lives as long as the
state; a reset points it back at the start-up target (none, unless the sandbox
was started with one) and drops what was still queued.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from automations.sandbox.faults import FaultPlan
from automations.sandbox.model import JSON, IncidentUpdate
from automations.sandbox.oncall import ROUTE_LIMITS
from automations.sandbox.ratelimit import RateLimiter
from automations.sandbox.seed.catalog import build_catalog
from automations.sandbox.seed.history import build_history
from automations.sandbox.seed.oncall import build_oncall
from automations.sandbox.store import Clock, Store
from automations.sandbox.webhook_events import events
from automations.sandbox.webhook_sender import WebhookSender, WebhookTarget

LARGE_PAGE_SIZES = ("clamp", "accept")
MAX_INCIDENTS = 100_000
REQUEST_LOG_SIZE = 10_000


@dataclass(frozen=True)
class SandboxConfig:
    """How to seed and run a sandbox; every field can be overridden per reset.

    ``large_page_size`` decides what ``page_size`` 251..500 does on
    ``/v2/incidents``: ``clamp`` serves (and reports) 250, ``accept`` serves it.
    ``now`` pins the clock at reset (for byte-identical seeded data).
    """

    api_key: str = "sandbox"
    seed: int = 1
    incidents: int = 200
    rate_limit_per_minute: int = 1200
    large_page_size: str = "clamp"
    now: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("seed", "incidents", "rate_limit_per_minute"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.large_page_size not in LARGE_PAGE_SIZES:
            raise ValueError(f"large_page_size must be one of {', '.join(LARGE_PAGE_SIZES)}")
        if not 0 <= self.incidents <= MAX_INCIDENTS:
            raise ValueError(f"incidents must be between 0 and {MAX_INCIDENTS}")
        if self.rate_limit_per_minute < 1:
            raise ValueError("rate_limit_per_minute must be at least 1")
        if not self.api_key:
            raise ValueError("api_key must not be empty")
        if self.now is not None and self.now.tzinfo is None:
            raise ValueError("now must be timezone-aware")

    def with_overrides(self, overrides: dict[str, Any]) -> SandboxConfig:
        unknown = sorted(set(overrides) - set(self.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown reset settings: {', '.join(unknown)}")
        return replace(self, **overrides)


class SandboxState:
    """Everything a request can see or change; replaced wholesale by ``reset``."""

    def __init__(self, config: SandboxConfig, webhook: WebhookTarget | None = None) -> None:
        self.defaults = config
        self.default_webhook = webhook
        self.webhooks = WebhookSender(lambda: self.clock.now())  # signs in sandbox time
        self.reset(config)

    def reset(self, config: SandboxConfig) -> None:
        self.config = config
        self.clock = Clock()
        if config.now is not None:
            self.clock.set(config.now)
        # the pinned instant itself, not clock.now() a few microseconds later
        anchor = config.now or self.clock.now()
        catalog = build_catalog(config.seed)
        history = build_history(config.seed, config.incidents, catalog, anchor)
        self.store = Store(catalog, history, config.seed)
        self.limiter = RateLimiter(config.rate_limit_per_minute)
        self.oncall = build_oncall(config.seed, catalog, anchor)
        # routes with a limit of their own, on top of the key's (e.g. POST /v2/escalations)
        self.route_limiters = {name: RateLimiter(n) for name, n in ROUTE_LIMITS.items()}
        self.update_keys: dict[str, IncidentUpdate] = {}  # POST /v2/incident_updates replays
        self.faults = FaultPlan.from_payload({}, config.seed)
        # bounded so a long-running demo does not grow without limit
        self.requests: deque[JSON] = deque(maxlen=REQUEST_LOG_SIZE)
        self.request_counter = 0
        self.webhooks.configure(self.default_webhook)

    def publish(self) -> None:
        """After each request: queue incident.io's events for what it changed (if sending)."""
        changes = self.store.take_changes()
        if changes and self.webhooks.enabled:
            for event_type, body in events(self.store, changes):
                self.webhooks.send(event_type, body)

    def describe(self) -> JSON:
        return {
            "seed": self.config.seed,
            "incidents": len(self.store),
            "rate_limit_per_minute": self.config.rate_limit_per_minute,
            "large_page_size": self.config.large_page_size,
            "now": self.clock.now().isoformat(),
            "offset_seconds": self.clock.offset / timedelta(seconds=1),
        }
