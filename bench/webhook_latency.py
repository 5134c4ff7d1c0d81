"""8. Reaction latency: webhooks against polling every minute.

A change is a person declaring a live incident in incident.io (the sandbox's
`POST /_sandbox/incidents`), at random intervals of 0.2 to 1.0 s. The reaction
is what the daemon (`automations run`, a real subprocess) does about it: a
`sync_status` rule (`every = "1m"`) mirrors the status category into the
incident's Phase field (an edit), and the rule's `notify` sends that action to
a webhook channel (a delivered notification). Latency is measured from the
moment the change is made to the moment the sandbox receives the edit, and to
the moment the notification reaches its receiver, all three read from the
sandbox's clock (the host's: its offset is zero here).

**Webhooks (measured).** The sandbox sends incident.io's signed webhooks to
the daemon's `[webhooks]` endpoint (`POST /webhooks/incident-io`), so the
daemon hears of each change as it happens. Polling every minute keeps running
as the safety net, as it would in production.

**Polling (computed, not waited for).** Waiting for 200 changes one by one at
one minute each would take hours, so the polling figure is computed from when
the changes landed relative to the cycles: the daemon's cycles start on a
one-minute grid (anchored at its first cycle in the webhook run), so change *i*
made at *t_i* is first seen by the cycle at *c_i*, the next grid point after
*t_i*, and its latency is *(c_i - t_i) + a_i*, where *a_i* is how long a real
cycle takes from its start to that incident's edit. The *a_i* are measured:
for each cycle of the grid, as many incidents as changed before it are
declared again and one real `automations once` cycle applies them; *a_i* is
the time from its first `GET /v2/incidents` to the edit of the matching
incident. A polling notification adds the same edit-to-delivery gap that the
webhook run measured for that change (both go through the same outbox).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from automations.demo import fresh_webhook_secret
from automations.notify.config import env_prefix
from automations.sandbox import SandboxConfig, SandboxThread
from automations.sandbox.state import SandboxState
from automations.sandbox.webhook_sink import WebhookSink
from bench.common import (
    API_KEY,
    ROOT,
    UNCAPPED,
    UNLIMITED_PER_MINUTE,
    Check,
    Section,
    table,
    toml_value,
)

CHANNEL = "bench-hook"
RULE = "mirror-phase"
EVERY = 60.0  # the rule's polling interval, seconds
TARGET_P50, TARGET_P99 = 1.0, 3.0
SETTLE_GUARD = 120.0  # seconds: only ends a run whose reactions never come


@dataclass
class Change:
    """One declared incident and when each reaction to it was seen (host seconds)."""

    incident_id: str
    made_at: float
    edited_at: float | None = None
    notified_at: float | None = None


@dataclass
class Run:
    changes: list[Change] = field(default_factory=list)
    first_cycle_at: float = 0.0


def _seconds(moment: datetime) -> float:
    return moment.timestamp()


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def write_config(
    directory: Path, base_url: str, hook_url: str, *, port: int | None, webhooks: bool
) -> Path:
    """The daemon's config: one mirror rule on live incidents, announced to a webhook channel."""
    rule = {
        "name": RULE,
        "type": "sync_status",
        "every": "1m",
        "where": {"status_category": ["live"]},
        "mirror": {"field": "Phase"},
        "max_actions_per_cycle": UNCAPPED,
        "max_actions_per_day": UNCAPPED,
        "notify": [CHANNEL],
    }
    lines = [
        "[incident_io]",
        f"base_url = {toml_value(base_url)}",
        "requests_per_minute = 1200",
        "",
        "[store]",
        f"path = {toml_value(directory / 'automations.db')}",
        "",
        "[[rules]]",
        *(f"{key} = {toml_value(value)}" for key, value in rule.items()),
        "",
        "[[channels]]",
        f"name = {toml_value(CHANNEL)}",
        'type = "webhook"',
        f"url = {toml_value(hook_url)}",
        'max_per_hour = "off"',
    ]
    if port is not None:
        lines += ["", "[server]", "enabled = true", f"port = {port}"]
    if webhooks:
        lines += ["", "[webhooks]", "enabled = true"]
    path = directory / ("webhooks.toml" if webhooks else "polling.toml")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Bench:
    """The sandbox (in this process), the notification receiver and the daemon's environment."""

    def __init__(self, directory: Path, incidents: int) -> None:
        self.directory = directory
        config = SandboxConfig(incidents=incidents, rate_limit_per_minute=UNLIMITED_PER_MINUTE)
        self.sandbox = SandboxThread(config).start()
        self.state: SandboxState = self.sandbox.state
        # every request of the run is read back (edit times): keep them all, not the last 10,000
        self.state.requests = deque(maxlen=None)
        self.control = httpx.Client(base_url=self.sandbox.base_url, timeout=30)
        self.notified: dict[str, float] = {}
        self.channel_secret = fresh_webhook_secret()
        self.sink = WebhookSink(
            directory / "notifications", self.channel_secret, on_delivery=self._delivered
        ).start()
        self.daemon_secret = fresh_webhook_secret()

    def close(self) -> None:
        self.control.close()
        self.sink.stop()
        self.sandbox.stop()

    def now(self) -> float:
        return _seconds(self.state.clock.now())

    def _delivered(self, path: Path, payload: dict[str, Any]) -> None:
        incident = (payload.get("data") or {}).get("incident") or {}
        if isinstance(incident, dict) and "id" in incident:
            self.notified.setdefault(incident["id"], self.now())

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "INCIDENT_IO_API_KEY": API_KEY,
            "AUTOMATIONS_WEBHOOK_SECRET": self.daemon_secret,
            env_prefix(CHANNEL) + "SECRET": self.channel_secret,
        }

    def declare(self, name: str) -> Change:
        made_at = self.now()
        response = self.control.post(
            "/_sandbox/incidents", json={"name": name, "severity": "Minor"}
        )
        response.raise_for_status()
        return Change(response.json()["incident"]["id"], made_at)

    def edits(self) -> dict[str, float]:
        """Incident ID -> when the sandbox received its first successful edit."""
        found: dict[str, float] = {}
        for entry in list(self.state.requests):
            path = entry["path"]
            if (
                entry["method"] == "POST"
                and path.endswith("/actions/edit")
                and entry["status"] == 200
            ):
                incident_id = path.split("/")[3]
                found.setdefault(incident_id, _seconds(datetime.fromisoformat(entry["time"])))
        return found

    def list_requests(self) -> list[float]:
        """When each cycle's listing (``GET /v2/incidents``) arrived, in order."""
        return [
            _seconds(datetime.fromisoformat(e["time"]))
            for e in list(self.state.requests)
            if e["method"] == "GET" and e["path"] == "/v2/incidents"
        ]

    def quiet(self, seconds: float) -> None:
        """Wait until nothing has reached the sandbox or the receiver for ``seconds``."""
        deadline = time.monotonic() + SETTLE_GUARD
        seen: tuple[object, int] = ("", -1)
        calm_since = time.monotonic()
        while time.monotonic() < deadline:
            requests = self.state.requests
            last = requests[-1]["request_id"] if requests else None
            now = (last, len(self.notified))
            if now != seen:
                seen, calm_since = now, time.monotonic()
            elif time.monotonic() - calm_since >= seconds and self.state.webhooks.idle():
                return
            time.sleep(0.1)
        raise RuntimeError("the daemon never went quiet")

    def wait_for(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + SETTLE_GUARD
        while not done():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.05)


@contextlib.contextmanager
def daemon(bench: Bench, config: Path) -> Iterator[subprocess.Popen[str]]:
    """``automations run`` in a subprocess, stopped with SIGTERM afterwards."""
    with (bench.directory / "daemon.log").open("a", encoding="utf-8") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "automations", "run", "--config", str(config)],
            cwd=bench.directory,
            env=bench.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def webhook_run(bench: Bench, count: int, spacing: tuple[float, float], seed: int) -> Run:
    """The daemon with webhooks on; ``count`` changes at random intervals; reactions measured."""
    port = _free_port()
    config = write_config(
        bench.directory, bench.sandbox.base_url, bench.sink.url, port=port, webhooks=True
    )
    run = Run()
    with daemon(bench, config) as process:
        bench.wait_for(lambda: bool(bench.list_requests()), "the first cycle")
        bench.quiet(6.0)  # the first cycle's edits and notifications (outbox every 5 s)
        if process.poll() is not None:
            raise RuntimeError("the daemon exited; see daemon.log")
        run.first_cycle_at = bench.list_requests()[0]
        bench.control.post(
            "/_sandbox/webhooks",
            json={
                "url": f"http://127.0.0.1:{port}/webhooks/incident-io",
                "secret": bench.daemon_secret,
            },
        ).raise_for_status()
        rng = random.Random(seed)
        for n in range(count):
            time.sleep(rng.uniform(*spacing))
            run.changes.append(bench.declare(f"Checkout errors, report {n}"))
        wanted = {c.incident_id for c in run.changes}
        bench.wait_for(lambda: wanted <= set(bench.edits()), "every edit")
        bench.wait_for(lambda: wanted <= set(bench.notified), "every notification")
        deliveries = bench.control.get("/_sandbox/webhooks").json()
        bench.control.delete("/_sandbox/webhooks")
    edits = bench.edits()
    for change in run.changes:
        change.edited_at = edits[change.incident_id]
        change.notified_at = bench.notified[change.incident_id]
    failed = deliveries["failed"]
    if failed:
        raise RuntimeError(f"{failed} webhook deliveries to the daemon failed")
    return run


def polling_run(bench: Bench, run: Run) -> list[float]:
    """Each change's cycle-start-to-edit time in a real cycle applying that cycle's changes."""
    config = write_config(
        bench.directory, bench.sandbox.base_url, bench.sink.url, port=None, webhooks=False
    )
    groups: dict[int, list[int]] = {}
    for index, change in enumerate(run.changes):
        cycle = math.ceil((change.made_at - run.first_cycle_at) / EVERY)
        groups.setdefault(cycle, []).append(index)
    applied = [0.0] * len(run.changes)
    for cycle, indexes in sorted(groups.items()):
        declared = [bench.declare(f"Polling check {cycle}.{n}") for n in range(len(indexes))]
        before = bench.now()
        done = subprocess.run(
            [sys.executable, "-m", "automations", "once", "--config", str(config)],
            cwd=bench.directory,
            env=bench.env(),
            capture_output=True,
            text=True,
            timeout=SETTLE_GUARD,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"automations once failed: {done.stderr[-2000:]}")
        started = min(t for t in bench.list_requests() if t >= before)
        edits = bench.edits()
        for index, change in zip(indexes, declared, strict=True):
            applied[index] = edits[change.incident_id] - started
    return applied


def _target(name: str, values: Sequence[float], p: int) -> Check:
    """Issue 14's targets: p50 under 1 s, p99 under 3 s."""
    limit = TARGET_P50 if p == 50 else TARGET_P99
    value = percentile(values, p)
    return Check(name, f"< {limit:.0f} s", f"{value:.2f} s", value < limit)


def _row(name: str, values: Sequence[float]) -> tuple[str, str, str, str, str]:
    return (
        name,
        f"{percentile(values, 50):.2f} s",
        f"{percentile(values, 99):.2f} s",
        f"{min(values):.2f} s",
        f"{max(values):.2f} s",
    )


def run(quick: bool) -> Section:
    count = 20 if quick else 200
    spacing = (0.1, 0.3) if quick else (0.2, 1.0)
    seeded = 50 if quick else 200  # the first cycle mirrors the live ones before the changes
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
        bench = Bench(Path(tmp), incidents=seeded)
        try:
            measured = webhook_run(bench, count, spacing, seed=8)
            applied = polling_run(bench, measured)
        finally:
            bench.close()
    changes = measured.changes
    hook_edit = [c.edited_at - c.made_at for c in changes if c.edited_at is not None]
    hook_notify = [c.notified_at - c.made_at for c in changes if c.notified_at is not None]
    gap = [n - e for n, e in zip(hook_notify, hook_edit, strict=True)]
    waits = [
        EVERY - ((c.made_at - measured.first_cycle_at) % EVERY) for c in changes
    ]  # until the next cycle of the grid
    poll_edit = [w + a for w, a in zip(waits, applied, strict=True)]
    poll_notify = [p + g for p, g in zip(poll_edit, gap, strict=True)]

    checks = [
        _target(f"webhooks: change to applied edit, p50 over {count} changes", hook_edit, 50),
        _target(f"webhooks: change to applied edit, p99 over {count} changes", hook_edit, 99),
        _target("webhooks: change to delivered notification, p50", hook_notify, 50),
        _target("webhooks: change to delivered notification, p99", hook_notify, 99),
        Check(
            "polling every 1m: change to applied edit, p50 (computed)",
            "(comparison)",
            f"{percentile(poll_edit, 50):.1f} s",
            None,
        ),
    ]
    body = [
        f"{count} changes, {spacing[0]}-{spacing[1]} s apart; the sandbox holds {seeded} seeded "
        "incidents besides them.",
        "",
        *table(
            ("reaction", "p50", "p99", "fastest", "slowest"),
            [
                _row("webhooks: applied edit", hook_edit),
                _row("webhooks: delivered notification", hook_notify),
                _row("polling every 1m: applied edit (computed)", poll_edit),
                _row("polling every 1m: delivered notification (computed)", poll_notify),
                _row("(polling: cycle start to edit, measured)", applied),
                _row("(edit to delivered notification, measured)", gap),
            ],
        ),
    ]
    raw = {
        "changes": count,
        "spacing_seconds": list(spacing),
        "webhook_edit_seconds": [round(v, 4) for v in hook_edit],
        "webhook_notification_seconds": [round(v, 4) for v in hook_notify],
        "polling_wait_seconds": [round(v, 4) for v in waits],
        "polling_cycle_to_edit_seconds": [round(v, 4) for v in applied],
    }
    return Section(
        number=8,
        title="Reaction latency: webhooks against polling every minute",
        command="python -m bench --only 8",
        checks=checks,
        body=body,
        raw=raw,
    )


if __name__ == "__main__":
    section = run("--quick" in sys.argv)
    print(json.dumps([c.__dict__ for c in section.checks], indent=1))
    print("\n".join(section.body))
