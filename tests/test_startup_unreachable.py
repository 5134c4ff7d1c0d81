"""A restart after a crash while the API is down: the daemon starts anyway and edits nothing
until the interrupted claim is settled; `once` exits 1 with one line, not a traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from automations.ledger import EventState, Ledger
from tests.engine_harness import Harness

H = timedelta(hours=1)

ESCALATE_EVERY_SECOND = """
[[rules]]
name = "escalate-minor"
type = "escalate_severity"
every = "1s"
where = { status_category = ["live"], severity = ["Minor"] }
steps = [ { after = "2h", to = "Major" } ]
notify_incident_channel = true
"""

NOT_SETTLED = "start-up: 1 unconfirmed claims not settled, the API is unreachable"


def _crash_after_edit(harness: Harness) -> str:
    """One edit lands and the process dies before confirming it; returns the incident ID."""
    harness.write(ESCALATE_EVERY_SECOND)
    # One attempt per call: an unreachable API fails at once instead of after its retries.
    text = harness.config_path.read_text().replace("retry_attempts = 3", "retry_attempts = 1")
    harness.config_path.write_text(text)
    stuck = harness.add("Stuck", age=3 * H)
    crashed = harness.cli("once", AUTOMATIONS_FAILPOINTS="after_edit")
    assert crashed.returncode == 137
    return str(stuck["id"])


def _state(harness: Harness) -> EventState:
    with Ledger(harness.ledger_path) as ledger:
        (event,) = ledger.events.history()
    return event.state


def _wait_for(condition: Callable[[], bool], seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_once_exits_1_with_one_line_and_settles_at_the_next_run(harness: Harness) -> None:
    """`once` with the API down after a crash: exit 1, the reason in one line, nothing sent."""
    stuck = _crash_after_edit(harness)
    harness.sandbox.set_faults(error_rate=1.0, error_status=503)

    down = harness.cli("once")
    harness.sandbox.clear_faults()
    up = harness.cli("once")

    assert down.returncode == 1, down.stderr
    assert NOT_SETTLED in down.stderr
    assert "Traceback" not in down.stderr
    assert "cycle every" not in down.stderr  # no cycle ran on an unsettled claim
    assert up.returncode == 0, up.stderr
    assert _state(harness) is EventState.RECONCILED
    assert [post["status"] for post in harness.posts()] == [200]
    assert harness.severity(stuck) == "Major"


def test_the_daemon_starts_on_the_cache_and_settles_once_the_api_answers(
    harness: Harness,
) -> None:
    """`run` with the API down after a crash stays up; the claim is reconciled, not resent."""
    _crash_after_edit(harness)
    harness.sandbox.set_faults(error_rate=1.0, error_status=503)
    command = [sys.executable, "-m", "automations", "run", "--config", str(harness.config_path)]
    with subprocess.Popen(
        command, env=harness.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as daemon:
        lines: list[str] = []
        stream = daemon.stderr
        assert stream is not None
        reader = threading.Thread(target=lambda: lines.extend(iter(stream.readline, "")))
        reader.start()
        try:
            assert _wait_for(
                lambda: sum("giving up" in line or "error" in line for line in lines) > 2
            )
            alive_while_down = daemon.poll() is None
            state_while_down = _state(harness)
            harness.sandbox.clear_faults()
            assert _wait_for(lambda: _state(harness) is EventState.RECONCILED)
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
        finally:
            daemon.kill()
            reader.join(10)
    stderr = "".join(lines)
    harness.outputs.append(stderr)

    assert alive_while_down, stderr
    assert state_while_down is EventState.PLANNED
    assert NOT_SETTLED in stderr
    assert daemon.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert [post["status"] for post in harness.posts()] == [200]
