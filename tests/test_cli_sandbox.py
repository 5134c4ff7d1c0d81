"""The real CLI in subprocesses against the sandbox: once, plan, crash and reconcile, the daemon."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from automations.ledger import EventState, Ledger
from tests.engine_harness import Harness
from tests.secret_values import INCOMING_SECRET, SMTP_PASSWORD, WEBHOOK_SECRET
from tests.test_engine_sandbox import ESCALATE

H = timedelta(hours=1)


def test_once_twice_edits_once(harness: Harness) -> None:
    harness.write(ESCALATE)
    stuck = harness.add("Stuck", age=3 * H)

    first = harness.cli("once")
    second = harness.cli("once")

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert len(harness.posts()) == 1
    assert harness.severity(stuck["id"]) == "Major"
    assert "1 applied" in first.stderr
    assert "0 applied" in second.stderr


def test_plan_explains_without_posting_or_recording(harness: Harness) -> None:
    harness.write(ESCALATE)
    stuck = harness.add("Checkout latency spike", age=3 * H)
    harness.sandbox.clear_requests()

    text = harness.cli("plan")
    as_json = harness.cli("plan", "--json")

    assert text.returncode == 0, text.stderr
    assert stuck["reference"] in text.stdout
    assert "Checkout latency spike" in text.stdout
    assert '"notify_incident_channel": true' in text.stdout
    (action,) = json.loads(as_json.stdout)
    assert action["incident_id"] == stuck["id"]
    assert action["rule"] == "escalate-minor"
    assert action["request"]["body"]["notify_incident_channel"] is True
    assert all(r["method"] == "GET" for r in harness.sandbox.requests())
    with Ledger(harness.ledger_path) as ledger:
        assert ledger.events.history() == []
    assert harness.severity(stuck["id"]) == "Minor"


def test_crash_between_edit_and_confirm_is_reconciled_not_repeated(harness: Harness) -> None:
    harness.write(ESCALATE)
    stuck = harness.add("Stuck", age=3 * H)

    crashed = harness.cli("once", AUTOMATIONS_FAILPOINTS="after_edit")
    assert crashed.returncode == 137
    assert harness.severity(stuck["id"]) == "Major"
    with Ledger(harness.ledger_path) as ledger:
        (event,) = ledger.events.history()
        assert event.state is EventState.PLANNED  # claimed, never confirmed

    again = harness.cli("once")

    assert again.returncode == 0, again.stderr
    assert len(harness.posts()) == 1
    with Ledger(harness.ledger_path) as ledger:
        (event,) = ledger.events.history()
    assert event.state is EventState.RECONCILED


def test_history_reads_the_ledger(harness: Harness) -> None:
    harness.write(ESCALATE)
    stuck = harness.add("Stuck", age=3 * H)
    harness.cli("once")

    text = harness.cli("history", "--incident", stuck["reference"])
    rows = json.loads(harness.cli("history", "--json", "--since", "1h").stdout)

    assert stuck["reference"] in text.stdout
    assert "applied" in text.stdout
    assert [r["incident_reference"] for r in rows] == [stuck["reference"]]


def test_daemon_runs_stops_on_sigterm_and_holds_its_lock(harness: Harness) -> None:
    harness.write(ESCALATE.replace('"1m"', '"10s"'))
    stuck = harness.add("Stuck", age=3 * H)
    command = [sys.executable, "-m", "automations", "run", "--config", str(harness.config_path)]
    with subprocess.Popen(
        command, env=harness.env(), stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as daemon:
        try:
            deadline = time.monotonic() + 30
            while not harness.posts() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert harness.severity(stuck["id"]) == "Major"

            second = harness.cli("run", timeout=30)
            assert second.returncode == 75
            assert "another automations process" in second.stderr.lower() or "lock" in second.stderr

            daemon.send_signal(signal.SIGTERM)
            _, stderr = daemon.communicate(timeout=30)
        finally:
            daemon.kill()
    assert daemon.returncode == 0, stderr
    assert "daemon stopped" in stderr
    assert "Traceback" not in stderr
    assert len(harness.posts()) == 1


def test_every_shipped_config_validates_against_the_sandbox(harness: Harness) -> None:
    shipped = sorted((Path(__file__).parent.parent / "config").glob("*.toml"))
    assert shipped
    for path in shipped:
        # The harness's sandbox runs a day behind the host: allow for it as the harness does.
        text = re.sub(r"(?m)^max_clock_skew = .*$", "", path.read_text())
        text = re.sub(
            r'(?m)^base_url = "[^"]*"',
            f'base_url = "{harness.sandbox.base_url}"\nmax_clock_skew = "30d"',
            text,
        )
        harness.config_path.write_text(text)
        # example.toml logs in to SMTP and signs webhooks, demo.toml receives incident.io's:
        # validate wants every secret set
        result = harness.cli(
            "validate",
            AUTOMATIONS_SMTP_PASSWORD=SMTP_PASSWORD,
            AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET=WEBHOOK_SECRET,
            AUTOMATIONS_WEBHOOK_SECRET=INCOMING_SECRET,
        )
        assert result.returncode == 0, f"{path.name}: {result.stderr}"


def test_an_unknown_name_lists_the_valid_ones(harness: Harness) -> None:
    harness.write(ESCALATE.replace('to = "Critical"', 'to = "Catastrophic"'))

    result = harness.cli("once")

    assert result.returncode == 78
    assert "rules[0].steps[1].to" in result.stderr
    assert "Catastrophic" in result.stderr
    assert "valid: Critical, Major, Minor" in result.stderr
    assert "Traceback" not in result.stderr
    assert harness.posts() == []
