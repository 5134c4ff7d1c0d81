"""The first start on a new ledger sends no "missed" digest; real occurrences after it are sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from automations.cli import cli
from automations.clock import host_now
from automations.ledger import Ledger, OutboxState
from tests.digest_support import Clock, SMTPServer, open_digests, tick_ok, write_config
from tests.sandbox_server import SandboxControl
from tests.secret_values import SANDBOX_KEY

MONDAY_0800 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # London = UTC in November


@pytest.fixture
def org(sandbox: SandboxControl) -> SandboxControl:
    sandbox.reset(incidents=0, now=MONDAY_0800)
    sandbox.add_incident(name="Checkout latency", status="Investigating", severity="Major")
    return sandbox


def test_a_new_ledger_does_not_catch_up_the_occurrence_before_its_first_start(
    org: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """Started at 08:00:30 (08:00 within the grace): nothing sent; Tuesday 08:00 is sent."""
    path = write_config(tmp_path, org.base_url, smtp.port)
    clock = Clock(MONDAY_0800 + timedelta(seconds=30))
    runtime, digests = open_digests(path, clock, in_use_for=None)
    try:
        tick_ok(digests)  # the daemon's start-up check
        monday = digests.due("daily")
        clock.now = MONDAY_0800 + timedelta(days=1, seconds=1)  # the cron job, a day later
        tuesday = digests.due("daily")
        tick_ok(digests)
    finally:
        runtime.close()

    assert monday is None
    assert tuesday == MONDAY_0800 + timedelta(days=1)
    with Ledger(tmp_path / "ledger.db") as ledger:
        assert ledger.outbox.periods("daily") == [("2026-11-24T08:00:00+00:00", OutboxState.SENT)]
    assert len(smtp.received) == 1


def test_the_first_occurrence_after_the_first_start_is_sent_and_later_misses_caught_up(
    org: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """Started at 07:59:30: 08:00 is sent; down all Tuesday morning, 08:00 is caught up at 08:30."""
    path = write_config(tmp_path, org.base_url, smtp.port)
    clock = Clock(MONDAY_0800 - timedelta(seconds=30))
    runtime, digests = open_digests(path, clock, in_use_for=None)
    try:
        tick_ok(digests)
        assert smtp.received == []
        clock.now = MONDAY_0800 + timedelta(seconds=1)
        tick_ok(digests)
    finally:
        runtime.close()
    clock.now = MONDAY_0800 + timedelta(days=1, minutes=30)  # a restart after a missed run
    runtime, digests = open_digests(path, clock, in_use_for=None)
    try:
        tick_ok(digests)
    finally:
        runtime.close()

    with Ledger(tmp_path / "ledger.db") as ledger:
        assert [p for p, _ in ledger.outbox.periods("daily")] == [
            "2026-11-23T08:00:00+00:00",
            "2026-11-24T08:00:00+00:00",
        ]
    assert len(smtp.received) == 2


@pytest.mark.usefixtures("restore_logging")
def test_once_on_a_new_ledger_sends_no_missed_digest_and_digest_send_still_works(
    org: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """`once` 10 minutes after the cron time on a new ledger sends nothing; `digest send` does."""
    due = host_now() - timedelta(minutes=10)
    path = write_config(
        tmp_path,
        org.base_url,
        smtp.port,
        cron=f"{due.minute} {due.hour} * * *",
        timezone="UTC",
        extra='catch_up_grace = "1h"',
    )
    env = {"INCIDENT_IO_API_KEY": SANDBOX_KEY}

    first = CliRunner().invoke(cli, ["once", "--config", str(path)], env=env)
    received_after_once = len(smtp.received)
    sent = CliRunner().invoke(cli, ["digest", "send", "daily", "--config", str(path)], env=env)

    assert first.exit_code == 0, first.output
    assert received_after_once == 0
    assert sent.exit_code == 0, sent.output
    assert "digest daily for " in sent.output
    assert len(smtp.received) == 1
