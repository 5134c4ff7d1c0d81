"""Schedules: which period is due, one catch-up after downtime, and the daemon's cron job."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED

from automations.daemon import Daemon
from automations.digest.schedule import Schedule, period_key
from automations.ledger import Ledger, OutboxState
from tests.digest_support import (
    Clock,
    SMTPServer,
    open_digests,
    parts,
    tick_ok,
    write_config,
)
from tests.sandbox_server import SandboxControl

LONDON = ZoneInfo("Europe/London")
WEEKDAYS = Schedule("0 8 * * mon-fri", LONDON)
MONDAY = datetime(2026, 11, 23, 8, 0, 30, tzinfo=UTC)  # GMT: London = UTC


def test_latest_occurrence_in_the_digest_timezone() -> None:
    """The latest 08:00 on a weekday, in London time, within the grace."""
    assert WEEKDAYS.latest(MONDAY + timedelta(hours=2), timedelta(hours=4)) == datetime(
        2026, 11, 23, 8, 0, tzinfo=LONDON
    )
    assert WEEKDAYS.latest(MONDAY + timedelta(hours=2), timedelta(hours=1)) is None
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert WEEKDAYS.latest(saturday, timedelta(hours=4)) is None
    assert WEEKDAYS.latest(saturday, timedelta(days=2)) == datetime(
        2026, 11, 27, 8, 0, tzinfo=LONDON
    )


def test_summer_time_moves_the_utc_instant_not_the_local_time() -> None:
    """In BST, 08:00 London is 07:00 UTC; the period key keeps the local offset."""
    july = datetime(2026, 7, 1, 7, 30, tzinfo=UTC)
    latest = WEEKDAYS.latest(july, timedelta(hours=1))
    assert latest is not None
    assert latest.astimezone(UTC) == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)
    assert period_key(latest, LONDON) == "2026-07-01T08:00:00+01:00"


def test_finding_the_latest_occurrence_is_cheap_with_a_long_grace() -> None:
    """Every minute with a week of grace: a backwards search, not 10,000 steps."""
    every_minute = Schedule("* * * * *", LONDON)
    started = time.perf_counter()
    for _ in range(50):
        assert every_minute.latest(MONDAY, timedelta(days=7)) == datetime(
            2026, 11, 23, 8, 0, tzinfo=UTC
        )
        assert WEEKDAYS.latest(MONDAY + timedelta(days=6), timedelta(days=7)) is not None
    assert time.perf_counter() - started < 1.0


FALL_BACK = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)  # London: 02:00 BST becomes 01:00 GMT


@pytest.mark.timeout(10)
def test_an_hourly_schedule_in_the_repeated_hour_is_found_at_once() -> None:
    """The issue's case: hourly in London at 01:35 GMT, the second 01:00 is the latest; no loop."""
    hourly = Schedule("0 * * * *", LONDON)
    now = FALL_BACK + timedelta(minutes=35)

    latest = hourly.latest(now, timedelta(hours=4))
    found = hourly.occurrences(now - timedelta(hours=3), now)

    assert latest is not None
    assert period_key(latest, LONDON) == "2026-10-25T01:00:00+00:00"
    assert [period_key(m, LONDON) for m in found] == [
        "2026-10-25T00:00:00+01:00",
        "2026-10-25T01:00:00+01:00",
        "2026-10-25T01:00:00+00:00",
    ]


@pytest.mark.timeout(30)
def test_an_hourly_digest_sends_both_one_oclocks_at_the_fall_back_once_each(
    sandbox: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """Ticks through the repeated hour: 01:00 BST and 01:00 GMT are two periods, each sent once."""
    sandbox.reset(incidents=0, now=FALL_BACK)
    path = write_config(tmp_path, sandbox.base_url, smtp.port, cron="0 * * * *")
    clock = Clock(FALL_BACK - timedelta(hours=1, seconds=-20))  # 01:00:20 BST
    for step in (60, 7, 7, 7, 7, 0):  # at 01:00 BST, then from 01:00 GMT to 01:28 GMT
        runtime, digests = open_digests(path, clock)
        try:
            tick_ok(digests)
        finally:
            runtime.close()
        clock.advance(minutes=step)
    with Ledger(tmp_path / "ledger.db") as ledger:
        assert ledger.outbox.periods("daily") == [
            ("2026-10-25T01:00:00+01:00", OutboxState.SENT),
            ("2026-10-25T01:00:00+00:00", OutboxState.SENT),
        ]
    assert len(smtp.received) == 2


def test_missed_runs_send_one_digest_not_many(
    sandbox: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """Down from Monday to Thursday 09:30: one digest for Thursday 08:00, covering since Monday."""
    sandbox.reset(incidents=0, now=MONDAY)
    sandbox.add_incident(name="Checkout latency", status="Investigating", severity="Major")
    clock = Clock(MONDAY)
    path = write_config(tmp_path, sandbox.base_url, smtp.port)
    runtime, digests = open_digests(path, clock)
    try:
        tick_ok(digests)
    finally:
        runtime.close()

    clock.now = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)  # Tue, Wed and Thu 08:00 missed
    for _ in range(3):  # start-up, then the 30 s outbox checks
        runtime, digests = open_digests(path, clock)
        try:
            tick_ok(digests)
        finally:
            runtime.close()
        clock.advance(seconds=30)
    with Ledger(tmp_path / "ledger.db") as ledger:
        assert ledger.outbox.periods("daily") == [
            ("2026-11-23T08:00:00+00:00", OutboxState.SENT),
            ("2026-11-26T08:00:00+00:00", OutboxState.SENT),
        ]
    _monday, thursday = smtp.received
    text, _ = parts(thursday.message)
    assert "Since Mon 23 Nov 08:00" in text  # the window spans the whole outage

    clock.now = datetime(2026, 11, 27, 13, 0, tzinfo=UTC)  # Friday, 5 h late: beyond the grace
    runtime, digests = open_digests(path, clock)
    try:
        assert digests.due("daily") is None
        tick_ok(digests)
    finally:
        runtime.close()
    assert len(smtp.received) == 2


def test_daemon_cron_job_delivers_once(
    sandbox: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """A digest scheduled a minute ahead: the daemon's own job fires it, once.

    The scheduler runs for real, but instead of waiting a minute the job's next
    run is moved to now, and the clock the digest sees says it is that minute.
    """
    sandbox.reset(incidents=0)
    sandbox.add_incident(name="Checkout latency", status="Fixing", severity="Critical")
    ahead = (datetime.now(UTC) + timedelta(minutes=1)).replace(second=0, microsecond=0)
    cron = f"{ahead.minute} {ahead.hour} * * *"
    path = write_config(tmp_path, sandbox.base_url, smtp.port, cron=cron, timezone="UTC")
    clock = Clock(ahead - timedelta(seconds=30))
    runtime, digests = open_digests(path, clock)
    daemon = Daemon(runtime, digests=digests)
    try:
        daemon.add_jobs()
        jobs = {job.id: job for job in daemon.scheduler.get_jobs()}
        assert set(jobs) == {"digest daily", "digest outbox"}
        assert jobs["digest daily"].trigger.get_next_fire_time(None, clock.now) == ahead

        daemon.digest_jobs.run_outbox()  # start-up: nothing due yet
        assert smtp.received == []

        ran: list[str] = []
        daemon.scheduler.add_listener(lambda event: ran.append(event.job_id), EVENT_JOB_EXECUTED)
        clock.now = ahead + timedelta(seconds=1)
        daemon.scheduler.start()
        for count in (1, 2):  # fire the cron job twice: a repeat is harmless
            daemon.scheduler.modify_job("digest daily", next_run_time=datetime.now(UTC))
            deadline = time.monotonic() + 10
            while ran.count("digest daily") < count and time.monotonic() < deadline:
                time.sleep(0.02)
        assert ran.count("digest daily") == 2
        daemon.digest_jobs.run_outbox()
    finally:
        if daemon.scheduler.running:
            daemon.scheduler.shutdown(wait=True)
        runtime.close()
    [got] = smtp.received
    assert "Checkout latency" in parts(got.message)[0]
    with Ledger(tmp_path / "ledger.db") as ledger:
        assert ledger.outbox.periods("daily") == [(period_key(ahead, ZoneInfo("UTC")), "sent")]
