"""A bad day at the API: the daemon survives, converges, and never changes an incident twice.

Cycles run in-process with stamina's test mode (retries without the sleeps)
so hundreds of faults fit in seconds; the real backoff is covered by the
client's resilience tests, and one test here runs the real daemon with its
real waits under a 30% error rate.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import stamina

from automations.daemon import run_once
from automations.runtime import Runtime
from tests.engine_harness import Harness
from tests.test_fault_crashes import ESCALATE_MINOR

H = timedelta(hours=1)

PROFILES: dict[str, dict[str, Any]] = {
    "30% 5xx": {"error_rate": 0.3, "error_status": 503},
    "30% 500": {"error_rate": 0.3, "error_status": 500},
    "429 storm, Retry-After in seconds": {
        "rate_limit_storm": {"seconds": 1, "retry_after_form": "seconds"}
    },
    "429 storm, Retry-After as a date": {
        "rate_limit_storm": {"seconds": 1, "retry_after_form": "http-date"}
    },
    "dropped connections": {"drop_rate": 0.3},
    "slow responses": {"latency_seconds": 0.02},
}


@pytest.fixture
def no_backoff_sleeps() -> Iterator[None]:
    with stamina.set_testing(True, attempts=3, cap=True):
        yield


def _severity_changes(runtime: Runtime, incident_id: str) -> int:
    return sum(
        1
        for update in runtime.client.iter_incident_updates(incident_id=incident_id)
        if update.new_severity is not None and update.new_severity.name == "Major"
    )


@pytest.mark.usefixtures("no_backoff_sleeps")
@pytest.mark.parametrize("faults", PROFILES.values(), ids=PROFILES.keys())
def test_cycles_under_faults_converge_without_changing_anything_twice(
    harness: Harness, faults: dict[str, Any]
) -> None:
    harness.write(ESCALATE_MINOR)
    runtime = harness.runtime()
    ids: list[str] = []
    try:
        harness.sandbox.set_faults(**faults)
        for _ in range(6):
            ids += [harness.add(f"Stuck {len(ids) + n}", age=3 * H)["id"] for n in range(4)]
            run_once(runtime)  # may fail under faults; must not raise
        harness.sandbox.clear_faults()
        for _ in range(3):
            (report,) = run_once(runtime)
        assert report.ok, report.line()
        assert report.planned == 0
        changes = {i: _severity_changes(runtime, i) for i in ids}
    finally:
        runtime.close()

    assert set(changes.values()) == {1}, changes
    faulted = [r for r in harness.sandbox.requests() if r["fault"]]
    assert faulted or "latency_seconds" in faults, "the faults were injected"


MALFORMED = ("invalid_json", "html", "missing_fields")


@pytest.mark.usefixtures("no_backoff_sleeps")
@pytest.mark.parametrize("body", MALFORMED)
def test_a_malformed_answer_fails_the_cycle_cleanly_and_is_logged_once(
    harness: Harness, body: str, caplog: pytest.LogCaptureFixture
) -> None:
    harness.write(ESCALATE_MINOR)
    stuck = harness.add("Stuck", age=3 * H)
    # Two records: missing_fields breaks every one, which is a malformed answer. One broken
    # incident among readable ones is skipped instead (tests/test_hostile_api.py).
    harness.add("Stuck too", age=3 * H)
    runtime = harness.runtime()
    try:
        bad = [{"kind": "malformed", "body": body}] * 3  # every attempt of one call
        harness.sandbox.set_faults(next=bad, paths=["/v2/incidents"])
        with caplog.at_level(logging.WARNING):
            (failed,) = run_once(runtime)
        harness.sandbox.clear_faults()
        (recovered,) = run_once(runtime)
    finally:
        runtime.close()

    assert not failed.ok
    assert failed.error is not None
    assert "GET /v2/incidents" in failed.error
    client_lines = [r for r in caplog.records if r.name.startswith("automations.incidentio.")]
    assert len(client_lines) == 1, [r.getMessage() for r in client_lines]
    assert "Traceback" not in caplog.text
    assert recovered.ok
    assert harness.severity(stuck["id"]) == "Major"


@pytest.mark.usefixtures("no_backoff_sleeps")
def test_unknown_enum_values_are_tolerated(harness: Harness) -> None:
    harness.write(ESCALATE_MINOR)
    stuck = harness.add("Stuck", age=3 * H)
    runtime = harness.runtime()
    try:
        harness.sandbox.set_faults(
            next=[{"kind": "malformed", "body": "unknown_enum"}], paths=["/v2/incidents"]
        )
        (report,) = run_once(runtime)
    finally:
        runtime.close()

    assert report.ok, report.line()
    # The list said "stabilising"; the re-read before the edit saw the real status.
    assert harness.severity(stuck["id"]) == "Major"


def test_the_real_daemon_stays_up_through_a_30_percent_error_rate(harness: Harness) -> None:
    harness.write(ESCALATE_MINOR.replace('"1s"', '"2s"'))
    ids = [harness.add(f"Stuck {n}", age=3 * H)["id"] for n in range(10)]
    harness.sandbox.set_faults(error_rate=0.3, error_status=503)
    command = [sys.executable, "-m", "automations", "run", "--config", str(harness.config_path)]
    daemon = subprocess.Popen(
        command, env=harness.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(6)
        assert daemon.poll() is None, "the daemon is still running"
        harness.sandbox.clear_faults()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(harness.severity(i) != "Major" for i in ids):
            time.sleep(0.5)
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=30)
    finally:
        daemon.kill()

    assert daemon.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert {harness.severity(i) for i in ids} == {"Major"}
    runtime = harness.runtime()
    try:
        assert {_severity_changes(runtime, i) for i in ids} == {1}
    finally:
        runtime.close()
