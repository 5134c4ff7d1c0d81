"""incident.io's side of a webhook: deliveries signed with ``standardwebhooks``, POSTed over
real HTTP to the daemon's listener, and the in-process daemon that receives them."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from automations.daemon import Daemon
from automations.ledger import Ledger, WebhookDelivery
from automations.runtime import Runtime
from tests.engine_harness import Harness
from tests.secret_values import INCOMING_SECRET

# The listener on a free port, webhooks on with their defaults.
WEBHOOKS = "[server]\nenabled = true\nport = 0\n\n[webhooks]\nenabled = true\n\n"

ESCALATE = """
[[rules]]
name = "escalate-minor"
type = "escalate_severity"
every = "1h"
where = { status_category = ["live"], severity = ["Minor"] }
steps = [ { after = "2h", to = "Major" } ]
"""

UPDATED = "public_incident.incident_updated_v2"
CREATED = "public_incident.incident_created_v2"
STATUS_UPDATED = "public_incident.incident_status_updated_v2"
PRIVATE_UPDATED = "private_incident.incident_updated_v2"


def signed(
    body: bytes, *, at: datetime, webhook_id: str | None = None, secret: str = INCOMING_SECRET
) -> dict[str, str]:
    """The headers incident.io (Svix) sends with ``body``, signed at ``at``."""
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, at, body.decode()),
        "content-type": "application/json",
    }


def event_body(event_type: str, payload: dict[str, Any]) -> bytes:
    return json.dumps({"event_type": event_type, event_type: payload}).encode()


class Sender:
    """POSTs deliveries to one daemon, signed at the API's now (the sandbox's clock)."""

    def __init__(self, harness: Harness, url: str) -> None:
        self.harness = harness
        self.url = url

    def api_incident(self, incident_id: str) -> dict[str, Any]:
        """The incident as the API shows it now: what a public event's body carries."""
        with self.harness.sandbox.api() as api:
            incident: dict[str, Any] = api.get(f"/v2/incidents/{incident_id}").json()["incident"]
        return incident

    def post(
        self,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        webhook_id: str | None = None,
        age: timedelta = timedelta(0),
        secret: str = INCOMING_SECRET,
    ) -> httpx.Response:
        if headers is None:
            at = self.harness.sandbox.now() - age
            headers = signed(body, at=at, webhook_id=webhook_id, secret=secret)
        return httpx.post(self.url, content=body, headers=headers, timeout=10)

    def send(self, event_type: str, payload: dict[str, Any], **options: Any) -> httpx.Response:
        return self.post(event_body(event_type, payload), **options)

    def updated(self, incident_id: str, **options: Any) -> httpx.Response:
        """``incident_updated_v2`` carrying the incident as it is now."""
        return self.send(UPDATED, self.api_incident(incident_id), **options)


@contextmanager
def webhook_daemon(
    harness: Harness,
    monkeypatch: pytest.MonkeyPatch,
    *,
    worker: bool = True,
    secret: str = INCOMING_SECRET,
) -> Iterator[tuple[Daemon, Sender]]:
    """The real daemon's listener, receiver and worker (no scheduled cycles: a test runs
    ``daemon._job`` when it wants polling), and a sender aimed at it."""
    monkeypatch.setenv("AUTOMATIONS_WEBHOOK_SECRET", secret)
    runtime = harness.runtime()
    daemon = Daemon(runtime)
    try:
        daemon.serve_health()
        daemon.add_jobs()  # not started: a test runs ``daemon._job`` when it wants a cycle
        assert daemon.health_server is not None
        assert daemon.webhooks is not None
        if worker:
            daemon.webhooks.start()
        path = runtime.config.webhooks.path
        yield daemon, Sender(harness, f"{daemon.health_server.url}{path}")
    finally:
        daemon.stopping.set()
        if daemon.webhooks is not None:
            daemon.webhooks.stop()
        daemon.stop_health()
        runtime.close()


def wait_until(done: Callable[[], object], what: str, timeout: float = 30) -> float:
    """Seconds it took; fails after ``timeout`` (a bound on a hang, not on speed)."""
    started = time.monotonic()
    while not done():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(0.02)
    return time.monotonic() - started


def deliveries(runtime: Runtime | Ledger) -> list[WebhookDelivery]:
    """Every recorded delivery, oldest first."""
    ledger = runtime.ledger if isinstance(runtime, Runtime) else runtime
    return ledger.webhooks.history()


def incident_reads(harness: Harness, incident_id: str) -> int:
    """``GET /v2/incidents/{id}`` requests the sandbox received for one incident."""
    path = f"/v2/incidents/{incident_id}"
    return sum(1 for r in harness.sandbox.requests() if r["method"] == "GET" and r["path"] == path)


def daemon_metrics(daemon: Daemon) -> str:
    """The daemon's /metrics page."""
    assert daemon.health_server is not None
    return httpx.get(f"{daemon.health_server.url}/metrics").text


def metric(text: str, event_type: str, outcome: str) -> float:
    """One automations_webhook_deliveries_total sample (0 when absent)."""
    pattern = (
        rf'automations_webhook_deliveries_total\{{event_type="{re.escape(event_type)}",'
        rf'outcome="{outcome}"\}} (\S+)'
    )
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0
