"""Shared set-up for tests that run the real engine, CLI or daemon against the sandbox.

A test writes the rules it needs as TOML; the harness adds the sandbox's URL
and a ledger in the test's temporary directory, so each test reads like the
file a user would write.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from automations.clock import host_now
from automations.config import load_config
from automations.failpoints import Failpoints
from automations.incidentio import TokenBucket
from automations.ledger import Ledger
from automations.rules.registry import RuleRegistry
from automations.runtime import Runtime, build_runtime
from tests.sandbox_server import SandboxControl

REPO = Path(__file__).resolve().parent.parent


class Harness:
    """One config file, one ledger, one sandbox: what a user has."""

    def __init__(self, sandbox: SandboxControl, tmp_path: Path) -> None:
        self.sandbox = sandbox
        self.tmp_path = tmp_path
        self.ledger_path = tmp_path / "ledger.db"
        # A PostgreSQL ledger instead of the file (tests/ledger_backends.py: store_harness).
        self.store_url: str | None = None
        self.config_path = tmp_path / "automations.toml"
        self.outputs: list[str] = []

    def incident_io(self, base_url: str | None = None, extra: str = "") -> str:
        """The ``[incident_io]`` table for this sandbox, as a test's own config needs it."""
        return (
            f'[incident_io]\nbase_url = "{base_url or self.sandbox.base_url}"\n{extra}'
            # The sandbox is pinned a day behind the host and tests move it days more.
            'max_clock_skew = "30d"\n\n'
        )

    def write(self, rules: str, *, base_url: str | None = None) -> Path:
        """The config file; ``base_url`` points it elsewhere than the sandbox (a proxy)."""
        store = f'url = "{self.store_url}"' if self.store_url else f'path = "{self.ledger_path}"'
        header = self.incident_io(base_url, "retry_attempts = 3\n") + f"[store]\n{store}\n\n"
        self.config_path.write_text(header + rules)
        return self.config_path

    @property
    def ledger_target(self) -> str | Path:
        """The ledger's path, or its URL on PostgreSQL."""
        return self.store_url or self.ledger_path

    def open_ledger(self) -> Ledger:
        """The config's ledger, opened as the daemon opens it."""
        return Ledger(self.ledger_target)

    def runtime(
        self,
        *,
        lock: bool = False,
        registry: RuleRegistry | None = None,
        failpoints: Failpoints | None = None,
    ) -> Runtime:
        """In-process tests skip the client-side limit (1000/min) that a real key needs;
        ``failpoints`` are the test's own crash points (none armed by default)."""
        config = load_config(self.config_path, registry)
        runtime = build_runtime(
            config, SecretStr(self.sandbox.api_key), lock=lock, failpoints=failpoints
        )
        runtime.client.rate_limiter = TokenBucket(rate_per_minute=600_000)
        return runtime

    def cycle(self) -> Any:
        """One cycle of every rule in a fresh runtime (a restart each time)."""
        from automations.daemon import run_once

        runtime = self.runtime()
        try:
            return run_once(runtime)
        finally:
            runtime.close()

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOMATIONS_")}
        env.update(INCIDENT_IO_API_KEY=self.sandbox.api_key, PYTHONPATH=str(REPO), **extra)
        env.pop("INCIDENT_IO_API_KEY_FILE", None)
        return env

    def cli(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        """The real CLI in a subprocess, as cron or a shell would run it."""
        command = [sys.executable, "-m", "automations", *args, "--config", str(self.config_path)]
        result = subprocess.run(
            command, env=self.env(**env), capture_output=True, text=True, timeout=timeout
        )
        self.outputs += [result.stdout, result.stderr]  # searched for secrets after the test
        return result

    def posts(self) -> list[dict[str, Any]]:
        """Edits the sandbox received (successful or not)."""
        return [
            r
            for r in self.sandbox.requests()
            if r["method"] == "POST" and r["path"].endswith("/actions/edit")
        ]

    def list_requests(self) -> int:
        return sum(
            1
            for r in self.sandbox.requests()
            if r["method"] == "GET" and r["path"] == "/v2/incidents"
        )

    def add(
        self,
        name: str,
        *,
        age: timedelta,
        status: str = "Investigating",
        severity: str | None = "Minor",
        **fields: Any,
    ) -> dict[str, Any]:
        created = self.sandbox.now() - age
        return self.sandbox.add_incident(
            name=name,
            created_at=created.isoformat(),
            updated_at=fields.pop("updated_at", created).isoformat(),
            status=status,
            severity=severity,
            **fields,
        )

    def severity(self, incident_id: str) -> str | None:
        severity = self.sandbox.incident(incident_id).get("severity")
        return None if severity is None else str(severity["name"])

    def status(self, incident_id: str) -> str:
        return str(self.sandbox.incident(incident_id)["incident_status"]["name"])


def empty_organisation(sandbox: SandboxControl, tmp_path: Path) -> Harness:
    """An empty organisation (the seeded catalog, no incidents) at a fixed time."""
    # A day before the host's current hour: relative to now, never a calendar date, and far
    # enough from the host's time that a test comparing API and host time would fail.
    sandbox.reset(
        incidents=0,
        now=host_now().replace(minute=0, second=0, microsecond=0) - timedelta(days=1),
        rate_limit_per_minute=100_000,
    )
    sandbox.clear_requests()
    return Harness(sandbox, tmp_path)


@pytest.fixture
def harness(sandbox: SandboxControl, tmp_path: Path) -> Harness:
    """An empty organisation (the seeded catalog, no incidents) at a fixed time."""
    return empty_organisation(sandbox, tmp_path)
