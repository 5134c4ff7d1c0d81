"""A host clock that was ahead once (a period queued "in 2027") does not silence a digest."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from automations.ledger import Ledger, OutboxState
from tests.digest_support import (
    Clock,
    SMTPServer,
    in_use_since,
    open_digests,
    tick_ok,
    write_config,
)
from tests.sandbox_server import SandboxControl

MONDAY_0800 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # London = UTC in November
AHEAD = MONDAY_0800 + timedelta(days=364)  # Monday 22 November 2027, 08:00


@pytest.fixture
def org(sandbox: SandboxControl) -> SandboxControl:
    sandbox.reset(incidents=0, now=MONDAY_0800)
    sandbox.add_incident(name="Checkout latency", status="Investigating", severity="Major")
    return sandbox


def future_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "in the future" in r.getMessage()
    ]


def test_a_period_queued_while_the_clock_was_ahead_does_not_cover_real_ones(
    org: SandboxControl, smtp: SMTPServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One start a year ahead queued 2027's digest; back on time, Monday's and Tuesday's are
    still queued and sent, and the future period is reported once, by name."""
    path = write_config(tmp_path, org.base_url, smtp.port)
    in_use_since(tmp_path / "ledger.db", "daily", MONDAY_0800 - timedelta(days=7))
    clock = Clock(AHEAD + timedelta(seconds=30))
    runtime, digests = open_digests(path, clock)
    try:
        tick_ok(digests)  # the start with the host clock a year ahead
    finally:
        runtime.close()
    assert len(smtp.received) == 1

    caplog.set_level(logging.WARNING, logger="automations.digest")
    clock.now = MONDAY_0800 + timedelta(seconds=30)  # the clock is put right
    runtime, digests = open_digests(path, clock)
    try:
        monday = digests.due("daily")
        tick_ok(digests)
        tick_ok(digests)  # the outbox job, 30 s later: nothing more, no second warning
        clock.now = MONDAY_0800 + timedelta(days=1, seconds=1)
        tuesday = digests.due("daily")
        tick_ok(digests)
    finally:
        runtime.close()

    assert monday == MONDAY_0800
    assert tuesday == MONDAY_0800 + timedelta(days=1)
    with Ledger(tmp_path / "ledger.db") as ledger:
        assert ledger.outbox.periods("daily") == [
            ("2026-11-23T08:00:00+00:00", OutboxState.SENT),
            ("2026-11-24T08:00:00+00:00", OutboxState.SENT),
            ("2027-11-22T08:00:00+00:00", OutboxState.SENT),
        ]
    assert len(smtp.received) == 3
    [warning] = future_warnings(caplog)
    assert "digest daily" in warning
    assert "2027-11-22T08:00:00+00:00" in warning


def test_a_ledger_first_started_while_the_clock_was_ahead_still_sends(
    org: SandboxControl, smtp: SMTPServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A new ledger's first start in 2027 (recorded as its first schedule) does not hold back
    the occurrences of 2026 once the clock is right."""
    path = write_config(tmp_path, org.base_url, smtp.port)
    clock = Clock(AHEAD + timedelta(seconds=30))
    runtime, digests = open_digests(path, clock, in_use_for=None)
    try:
        tick_ok(digests)  # a first start: no "missed" digest, but 2027 is recorded
    finally:
        runtime.close()
    assert smtp.received == []

    caplog.set_level(logging.WARNING, logger="automations.digest")
    clock.now = MONDAY_0800 + timedelta(seconds=30)
    runtime, digests = open_digests(path, clock, in_use_for=None)
    try:
        monday = digests.due("daily")
        tick_ok(digests)
        tick_ok(digests)
    finally:
        runtime.close()

    assert monday == MONDAY_0800
    assert len(smtp.received) == 1
    [warning] = future_warnings(caplog)
    assert "digest daily" in warning
    assert "2027-11-22T08:00:30+00:00" in warning


def test_a_clock_stepped_back_a_little_still_counts_what_it_just_sent(
    org: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """`digest send` at 08:03, then NTP steps the clock back to 08:01: 08:00 is covered."""
    path = write_config(tmp_path, org.base_url, smtp.port)
    clock = Clock(MONDAY_0800 + timedelta(minutes=3))
    runtime, digests = open_digests(path, clock)
    try:
        digests.send_now("daily")
        clock.now = MONDAY_0800 + timedelta(minutes=1)
        due = digests.due("daily")
    finally:
        runtime.close()

    assert due is None
    assert len(smtp.received) == 1
