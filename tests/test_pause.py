"""The kill switch: `automations pause` stops every effect, the daemon keeps running and
says what it would do; `automations resume` lets what is due through. On both backends where
the ledger is what holds the flag."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from automations.daemon import Daemon
from automations.ledger import Ledger
from automations.store import store_label
from tests.digest_support import Clock, SMTPServer, open_digests, write_config
from tests.engine_harness import REPO, Harness
from tests.sandbox_server import SandboxControl
from tests.test_engine_sandbox import ESCALATE

H = timedelta(hours=1)
EVERY_SECOND = ESCALATE.replace('every = "1m"', 'every = "1s"')


def test_pause_holds_every_edit_and_resume_lets_them_through(
    store_harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Paused: the cycle polls and logs the edit it would make, sends none; resumed: applied."""
    harness = store_harness
    harness.write(ESCALATE)
    stuck = harness.add("Stuck", age=3 * H)

    paused = harness.cli("pause", "--reason", "rule misbehaving")
    with caplog.at_level(logging.INFO):
        (held,) = harness.cycle()
    plan = harness.cli("plan")
    resumed = harness.cli("resume")
    (after,) = harness.cycle()

    assert paused.returncode == 0, paused.stderr
    assert "paused since" in paused.stdout
    assert "rule misbehaving" in paused.stdout
    assert store_label(harness.ledger_target) in paused.stdout
    assert held.ok
    assert (held.planned, held.applied) == (1, 0)
    assert "PAUSED (paused since" in held.line()
    assert "rule misbehaving" in held.line()
    assert "1 held back until `automations resume`" in held.line()
    assert f"PAUSED, not applied: escalate-minor {stuck['reference']}" in caplog.text
    assert harness.list_requests() >= 1, "the paused cycle still polled"
    assert "nothing is applied until `automations resume`" in plan.stderr
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed (was paused since" in resumed.stdout
    assert after.applied == 1
    assert harness.severity(stuck["id"]) == "Major"
    assert len(harness.posts()) == 1


def test_pause_and_resume_need_no_api_key_and_say_when_not_paused(harness: Harness) -> None:
    """At 3 am the key may be out of reach: the flag is in the ledger, not the API."""
    harness.write(ESCALATE)
    env = {k: v for k, v in harness.env().items() if not k.startswith("INCIDENT_IO_API_KEY")}
    command = [sys.executable, "-m", "automations", "--config", str(harness.config_path)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    results = [run("resume"), run("pause"), run("pause", "--reason", "again"), run("resume")]

    assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr for r in results]
    assert results[0].stdout.startswith("not paused: there is no ledger at")
    assert "did not exist and was created" in results[1].stdout
    assert "did not exist" not in results[2].stdout
    assert ": again" in results[3].stdout
    with Ledger(harness.ledger_path) as ledger:
        assert ledger.kill_switch.paused() is None


def test_pausing_a_running_daemon_holds_its_edits_within_a_cycle(store_harness: Harness) -> None:
    """The real daemon, every second: paused, it keeps polling without editing; resumed, it
    edits on its next cycle; it never stopped."""
    harness = store_harness
    harness.write(EVERY_SECOND)
    with subprocess.Popen(
        [sys.executable, "-m", "automations", "run", "--config", str(harness.config_path)],
        env=harness.env(),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as daemon:
        try:
            wait_for(lambda: harness.list_requests() >= 1, "the first cycle")
            assert harness.cli("pause", "--reason", "test").returncode == 0
            polled = harness.list_requests()
            time.sleep(1.5)  # a cycle that may have read the flag just before it was set
            stuck = harness.add("Stuck while paused", age=3 * H)
            wait_for(lambda: harness.list_requests() >= polled + 3, "cycles while paused")
            assert harness.posts() == []
            assert harness.cli("resume").returncode == 0
            wait_for(lambda: harness.severity(stuck["id"]) == "Major", "the edit after resume")
            assert daemon.poll() is None, "the daemon kept running"
        finally:
            daemon.send_signal(signal.SIGTERM)
            _, stderr = daemon.communicate(timeout=30)
    harness.outputs.append(stderr)
    assert "PAUSED, not applied: escalate-minor" in stderr
    assert len(harness.posts()) == 1


def test_a_pause_during_a_cycle_holds_its_remaining_edits(store_harness: Harness) -> None:
    """Paused while a slow cycle is applying: the edits after the pause are held, not sent."""
    harness = store_harness
    harness.write(ESCALATE)
    for n in range(6):
        harness.add(f"Stuck {n}", age=3 * H)
    harness.sandbox.set_faults(latency_seconds=0.3, paths=["/v2/incidents/"])

    def pause_after_the_first_edit() -> None:
        wait_for(lambda: len(harness.posts()) >= 1, "the first edit")
        with harness.open_ledger() as ledger:
            ledger.kill_switch.pause(by="test", reason="mid-cycle", now=harness.sandbox.now())

    pauser = threading.Thread(target=pause_after_the_first_edit)
    pauser.start()
    (report,) = harness.cycle()
    pauser.join()

    assert 1 <= report.applied < 6
    assert report.rules[0].held == 6 - report.applied
    assert len(harness.posts()) == report.applied
    assert "PAUSED (paused since" in report.line()
    assert "mid-cycle" in report.line()


def wait_for(condition: object, what: str, timeout: float = 20) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


MONDAY_0800 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # the sandbox's and digests' clock


def test_pause_holds_digest_mail_until_resume(
    sandbox: SandboxControl, smtp: SMTPServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A digest due while paused is not queued or sent (and says so); after resume it is."""
    sandbox.reset(incidents=0, now=MONDAY_0800)
    sandbox.add_incident(name="Checkout latency", status="Investigating", severity="Major")
    path = write_config(tmp_path, sandbox.base_url, smtp.port)
    runtime, digests = open_digests(path, Clock(MONDAY_0800 + timedelta(minutes=1)))
    try:
        daemon = Daemon(runtime, digests=digests)
        runtime.ledger.kill_switch.pause(by="test", reason="holiday", now=MONDAY_0800)
        with caplog.at_level(logging.WARNING):
            daemon.digest_jobs.run_scheduled("daily")  # the cron job fires
            daemon.digest_jobs.run_outbox()  # the 30-second outbox job
        held = (len(smtp.received), runtime.ledger.outbox.periods("daily"))
        runtime.ledger.kill_switch.resume()
        daemon.digest_jobs.run_outbox()
    finally:
        runtime.close()

    assert held == (0, [])
    assert "digest daily: not sent, the automations are paused since" in caplog.text
    assert len(smtp.received) == 1


def test_once_while_paused_exits_0_and_edits_nothing(harness: Harness) -> None:
    """Cron's `once` while paused: a normal exit, the cycle line says PAUSED, no edit."""
    harness.write(ESCALATE)
    harness.add("Stuck", age=3 * H)
    assert harness.cli("pause").returncode == 0

    once = harness.cli("once")

    assert once.returncode == 0, once.stderr
    assert "PAUSED" in once.stderr
    assert harness.posts() == []
    assert os.path.exists(harness.ledger_path)
