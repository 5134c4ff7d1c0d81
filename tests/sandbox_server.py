"""Pytest fixtures for the sandbox: one server per session, reset before each test.

``sandbox_server`` runs a real uvicorn on 127.0.0.1 (a free port) for the
whole session; ``sandbox`` resets it (seed 1, 200 incidents) and hands the test
a ``SandboxControl`` that drives the ``/_sandbox/`` control routes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from automations.sandbox import SandboxConfig, SandboxThread
from tests.secret_values import SANDBOX_KEY


class SandboxControl:
    """What a test needs: where the API is, its key, and the control routes."""

    api_key = SANDBOX_KEY

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        # A fresh connection per control call: a kept-alive one can be closed by the server's
        # idle timeout just as a call reuses it (ECONNRESET when a slow CLI step ran between).
        no_keepalive = httpx.Limits(max_keepalive_connections=0)
        self._http = httpx.Client(base_url=base_url, timeout=30, limits=no_keepalive)

    def close(self) -> None:
        self._http.close()

    def api(self, api_key: str | None = None, **kwargs: Any) -> httpx.Client:
        """An httpx client for the API routes, authenticated with ``api_key``."""
        headers = {"Authorization": f"Bearer {api_key or self.api_key}"}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kwargs)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self._http.request(method, path, json=body)
        if response.status_code >= 400:
            raise AssertionError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json()

    def reset(
        self,
        seed: int = 1,
        incidents: int = 200,
        rate_limit_per_minute: int = 1200,
        **opts: Any,
    ) -> dict[str, Any]:
        """Fresh organisation and history; opts: large_page_size, now (datetime or str)."""
        if isinstance(opts.get("now"), datetime):
            opts["now"] = opts["now"].isoformat()
        body = {
            "seed": seed,
            "incidents": incidents,
            "rate_limit_per_minute": rate_limit_per_minute,
            **opts,
        }
        result: dict[str, Any] = self._call("POST", "/_sandbox/reset", body)
        return result

    def now(self) -> datetime:
        return datetime.fromisoformat(self._call("GET", "/_sandbox/clock")["now"])

    def advance_clock(self, seconds: float) -> datetime:
        body = self._call("POST", "/_sandbox/clock", {"advance_seconds": seconds})
        return datetime.fromisoformat(body["now"])

    def set_clock(self, now: datetime) -> datetime:
        body = self._call("POST", "/_sandbox/clock", {"now": now.isoformat()})
        return datetime.fromisoformat(body["now"])

    def set_faults(
        self, next: list[dict[str, Any]] | None = None, **settings: Any
    ) -> dict[str, Any]:
        """Replace the faults: ``next`` queued faults plus error_rate, drop_rate, paths..."""
        body = {**settings, **({"next": next} if next is not None else {})}
        result: dict[str, Any] = self._call("POST", "/_sandbox/faults", body)
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sandbox/faults")

    def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/_sandbox/requests")["requests"]
        return result

    def clear_requests(self) -> None:
        self._call("DELETE", "/_sandbox/requests")

    def add_incident(self, **fields: Any) -> dict[str, Any]:
        """Add an incident as a human would; see automations/sandbox/manual.py for fields."""
        result: dict[str, Any] = self._call("POST", "/_sandbox/incidents", fields)["incident"]
        return result

    def update_incident(self, incident_id: str, **fields: Any) -> dict[str, Any]:
        """Change an incident directly, bypassing the API's lifecycle rules."""
        path = f"/_sandbox/incidents/{incident_id}"
        result: dict[str, Any] = self._call("PATCH", path, fields)["incident"]
        return result

    def update_follow_up(self, follow_up_id: str, **fields: Any) -> dict[str, Any]:
        """Change a follow-up as a human would in the app (status, title, assignee...)."""
        path = f"/_sandbox/follow_ups/{follow_up_id}"
        result: dict[str, Any] = self._call("PATCH", path, fields)["follow_up"]
        return result

    def set_webhooks(self, url: str, secret: str, **settings: Any) -> dict[str, Any]:
        """Send signed events for every change to ``url`` (retry_delays, timeout_seconds)."""
        body = {"url": url, "secret": secret, **settings}
        result: dict[str, Any] = self._call("POST", "/_sandbox/webhooks", body)
        return result

    def webhooks(self) -> dict[str, Any]:
        """The sender's settings, counts and deliveries (each attempt's outcome)."""
        result: dict[str, Any] = self._call("GET", "/_sandbox/webhooks")
        return result

    def incident(self, incident_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self._call("GET", f"/_sandbox/incidents/{incident_id}")
        result: dict[str, Any] = body["incident"]
        return result


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxThread]:
    """One real sandbox server for the whole test session."""
    server = SandboxThread(SandboxConfig(api_key=SANDBOX_KEY)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sandbox(sandbox_server: SandboxThread) -> Iterator[SandboxControl]:
    """The session's sandbox, reset to seed 1 with 200 incidents and no faults."""
    control = SandboxControl(sandbox_server.base_url)
    control.reset()
    try:
        yield control
    finally:
        control.close()
