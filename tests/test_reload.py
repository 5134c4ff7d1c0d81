"""SIGHUP reloads the config: a good file replaces rules, schedules and digests; a bad one is
logged in one line and the old config keeps running."""

from __future__ import annotations

import logging
import re
import signal
from collections.abc import Iterator
from datetime import timedelta

import pytest

from automations.daemon import Daemon
from tests.daemon_process import DaemonProcess
from tests.digest_support import SMTP_TABLE
from tests.engine_harness import Harness

H = timedelta(hours=1)


def ladder(name: str, every: str, after: str, to: str = "Major") -> str:
    return f"""
[[rules]]
name = "{name}"
type = "escalate_severity"
every = "{every}"
where = {{ status_category = ["live"] }}
steps = [ {{ after = "{after}", to = "{to}" }} ]
"""


def test_sighup_reloads_a_good_file_and_keeps_the_old_config_on_a_bad_one(
    harness: Harness,
) -> None:
    """The real daemon: a new rule acts after SIGHUP; a broken file changes nothing."""
    harness.write(ladder("slow", "1s", after="6h"))
    first = harness.add("First", age=3 * H)
    daemon = DaemonProcess(harness)
    try:
        daemon.wait_for_line("cycle every 1s")
        assert harness.posts() == []  # the 6h ladder is not due

        harness.write(ladder("slow", "1s", after="6h") + ladder("prompt", "2s", after="2h"))
        mark = len(daemon.lines)
        daemon.process.send_signal(signal.SIGHUP)
        daemon.wait_for_line("config reloaded", after=mark)
        daemon.wait_for(lambda: harness.severity(first["id"]) == "Major", "escalation")

        harness.write(ladder("slow", "1s", after="6h") + ladder("prompt", "2s", "2h", "Huge"))
        mark = len(daemon.lines)
        daemon.process.send_signal(signal.SIGHUP)
        refused = daemon.wait_for_line("reload refused", after=mark)
        second = harness.add("Second", age=3 * H)
        daemon.wait_for(lambda: harness.severity(second["id"]) == "Major", "old rules acting")

        locked = harness.cli("once", timeout=30)
    finally:
        code = daemon.stop()
        daemon.kill()

    log = "\n".join(daemon.lines)
    assert code == 0, log
    assert "rules[1].steps[0].to" in refused
    assert "'Huge'" in refused
    assert "still running the previous config" in refused
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line) for line in daemon.lines), log
    assert locked.returncode == 75, "the reload kept the ledger lock"
    assert "Traceback" not in log
    assert "daemon stopped" in log
    assert len(harness.posts()) == 2  # each incident edited once: no cycle ran twice


DIGEST = """
[[digests]]
name = "{name}"
cron = "0 8 * * mon-fri"
timezone = "Europe/London"
to = ["oncall@example.com"]
"""


@pytest.fixture
def daemon(harness: Harness) -> Iterator[Daemon]:
    harness.write(ladder("a", "1m", "2h") + SMTP_TABLE.format(port=1) + DIGEST.format(name="daily"))
    runtime = harness.runtime(lock=True)
    daemon = Daemon(runtime)
    daemon.add_jobs()  # the scheduler is not started: jobs wait, nothing runs
    try:
        yield daemon
    finally:
        runtime.close()


def _jobs(daemon: Daemon) -> set[str]:
    return {job.id for job in daemon.scheduler.get_jobs()}


def test_reload_rebuilds_rules_schedules_and_digests(harness: Harness, daemon: Daemon) -> None:
    """Each schedule and digest of the new file gets its job; the old ones go."""
    assert _jobs(daemon) == {"every 1m", "digest daily", "digest outbox"}
    ledger, client = daemon.runtime.ledger, daemon.runtime.client
    harness.write(
        ladder("a", "5m", "2h")
        + ladder("b", "5m", "3h")
        + SMTP_TABLE.format(port=1)
        + DIGEST.format(name="weekly")
    )

    assert daemon.reload() is True

    assert _jobs(daemon) == {"every 5m", "digest weekly", "digest outbox"}
    assert [rule.name for rule in daemon.runtime.rules] == ["a", "b"]
    assert daemon.digests is not None
    assert daemon.digests.names() == ["weekly"]
    assert daemon.runtime.ledger is ledger  # the same open ledger: its lock is never dropped
    assert daemon.runtime.client is client


def test_a_job_that_fired_before_the_reload_runs_on_the_new_config(
    harness: Harness, daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    """A job waiting for its lock during the swap finds the new rules, or its digest gone."""
    harness.write(ladder("a", "1m", "2h", to="Critical") + SMTP_TABLE.format(port=1))
    stuck = harness.add("Stuck", age=3 * H)
    assert daemon.reload() is True

    with caplog.at_level(logging.INFO, logger="automations"):
        daemon._job("every 1m")  # as if it had fired just before the swap
        daemon.digest_jobs.run_scheduled("daily")

    assert harness.severity(stuck["id"]) == "Critical"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_bad_file_changes_nothing_and_is_one_log_line(
    harness: Harness, daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    """Unknown names, a TOML error, a missing file: one error line each, the old jobs stay."""
    before = _jobs(daemon), daemon.runtime.rules, daemon.digests
    broken = {
        "an unknown severity": ladder("a", "5m", "2h", to="Huge"),
        "a TOML syntax error": "[[rules]\nname = 1\n",
        "an unknown digest name": ladder("a", "5m", "2h")
        + SMTP_TABLE.format(port=1)
        + DIGEST.format(name="daily").replace(
            'to = ["', 'where = { severity = ["Huge"] }\nto = ["'
        ),
    }
    for text in broken.values():
        harness.write(text)
        with caplog.at_level(logging.INFO, logger="automations"):
            caplog.clear()
            assert daemon.reload() is False
        (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert record.levelno == logging.ERROR
        assert "\n" not in record.getMessage()
        assert str(harness.config_path) in record.getMessage()
        assert (_jobs(daemon), daemon.runtime.rules, daemon.digests) == before
    harness.config_path.unlink()
    assert daemon.reload() is False
    assert (_jobs(daemon), daemon.runtime.rules, daemon.digests) == before


def test_a_changed_connection_table_waits_for_a_restart(
    harness: Harness, daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    """[incident_io] and the like stay as started; the reload says so and applies the rest."""
    running = daemon.runtime.config.incident_io
    text = harness.config_path.read_text().replace("retry_attempts = 3", "retry_attempts = 1")
    harness.config_path.write_text(text.replace('"2h"', '"4h"'))

    with caplog.at_level(logging.INFO, logger="automations"):
        assert daemon.reload() is True

    assert daemon.runtime.config.incident_io == running
    (step,) = daemon.runtime.rules[0].options.steps
    assert step.after == 4 * H
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == "config reload: [incident_io] changed; kept as started until a restart"
