"""The demo's webhook-driven reaction: a change only a webhook can bring to the daemon in time.

The demo's sandbox sends incident.io's signed webhooks to the daemon's own
``[webhooks]`` endpoint (a fresh ``AUTOMATIONS_WEBHOOK_SECRET`` per run, set in
the environment as a user would). Once the first cycle has run, the demo
declares an incident itself, as a person would in the app: Critical,
customer-facing, impact started a quarter of an hour ago. ``config/demo.toml``
announces such incidents with a notice rule that polls only every hour, so
when the announcement reaches ``./outbox/webhooks/`` seconds later, the
webhook brought it; the narrative prints how many seconds it took.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import httpx
from pydantic import SecretStr

from automations.sandbox import SandboxThread
from automations.sandbox.webhook_sender import WebhookTarget

if TYPE_CHECKING:
    from automations.config import Config
    from automations.daemon import Daemon

DECLARE_AFTER = 6.0  # seconds after the first cycle: its announcements have gone out by then
INCIDENT: dict[str, Any] = {
    "name": "Checkout failing for every customer",
    "severity": "Critical",
    "incident_type": "Customer-facing",
    "status": "Investigating",
}
IMPACT_STARTED = timedelta(minutes=15)


class Reaction:
    """Points the sandbox at the daemon, makes the demo's change, and times the reaction."""

    def __init__(self, sandbox: SandboxThread, config: Config, secret: str) -> None:
        self.sandbox = sandbox
        self.path = config.webhooks.path
        self.secret = secret
        self.incident_id: str | None = None
        self.reference = ""
        self.declared_at = 0.0
        self.seen = False
        self._lock = threading.Lock()

    def start(self, daemon: Daemon) -> None:
        """In the background: wait for the listener, then for the first cycle; then act."""
        threading.Thread(
            target=self._run, args=(daemon,), name="demo-reaction", daemon=True
        ).start()

    def _run(self, daemon: Daemon) -> None:
        while daemon.health_server is None:
            if daemon.stopping.wait(0.05):
                return
        url = daemon.health_server.url + self.path
        self.sandbox.state.webhooks.configure(WebhookTarget(url, SecretStr(self.secret)))
        click.secho(
            f"demo: the sandbox sends incident.io's signed webhooks to {url}",
            fg="green",
            err=True,
        )
        while not daemon.first_cycle_done.wait(0.2):
            if daemon.stopping.is_set():
                return
        if not daemon.stopping.wait(DECLARE_AFTER):
            self.declare()

    def declare(self) -> None:
        """Declare the demo's incident in the sandbox, as a person would in the app."""
        with httpx.Client(base_url=self.sandbox.base_url, timeout=10) as control:
            now = datetime.fromisoformat(control.get("/_sandbox/clock").json()["now"])
            started = (now - IMPACT_STARTED).isoformat()
            body = {**INCIDENT, "timestamps": {"Impact started": started}}
            with self._lock:
                self.declared_at = time.monotonic()
                response = control.post("/_sandbox/incidents", json=body)
                response.raise_for_status()
                incident = response.json()["incident"]
                self.incident_id, self.reference = incident["id"], incident["reference"]
        click.secho(
            f"demo: declared {self.reference} {INCIDENT['name']!r} (Critical, customer-facing, "
            "impact started 15 minutes ago); its notice rule polls only every hour, "
            "so a quick announcement can only come from the webhook",
            fg="green",
            err=True,
        )

    def on_delivery(self, path: Path, payload: dict[str, Any]) -> None:
        """Called for each notification the demo's receiver accepts: is it the reaction?"""
        data = payload.get("data")
        incident = data.get("incident") if isinstance(data, dict) else None
        found = incident.get("id") if isinstance(incident, dict) else None
        with self._lock:
            if self.seen or found is None or found != self.incident_id:
                return
            self.seen = True
            took = time.monotonic() - self.declared_at
        click.secho(
            f"reaction: {self.reference} announced {took:.1f}s after the demo declared it "
            "(incident.io webhook -> daemon -> notice rule -> ops-hook)",
            fg="magenta",
            err=True,
        )
