"""Recipients one by one: a server that refuses some of them never costs the others the digest.

A real SMTP server (aiosmtpd) caps recipients per transaction (452), greylists
(451), has a busy mailbox (450) or an unknown one (550), or ends a transaction
(421). Every address that can get the digest gets exactly one copy.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from automations.ledger import OutboxState
from tests.digest_support import Clock, SMTPServer, open_digests, write_config
from tests.sandbox_server import SandboxControl
from tests.test_digest_delivery import T0, add

PERIOD = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
KEY = "2026-11-23T08:00:00+00:00"
TEAM = [f"oncall{n}@example.com" for n in range(1, 6)]
BUSY = "busy@example.com"
GONE = "gone@example.com"
# With cc support@ and bcc archive@ from the test config.
EVERYONE = [*TEAM, BUSY, GONE, "support@example.com", "archive@example.com"]


@pytest.fixture
def org(sandbox: SandboxControl) -> SandboxControl:
    sandbox.reset(incidents=0, now=T0)
    add(sandbox, "Checkout latency", age=timedelta(hours=1))
    return sandbox


def _config(tmp_path: Path, org: SandboxControl, smtp: SMTPServer) -> Path:
    path = write_config(tmp_path, org.base_url, smtp.port)
    to = ", ".join(f'"{a}"' for a in [*TEAM, BUSY, GONE])
    path.write_text(path.read_text().replace('to = ["oncall@example.com"]', f"to = [{to}]"))
    return path


def copies(smtp: SMTPServer) -> Counter[str]:
    """How many copies each address received, over every message."""
    return Counter(rcpt for got in smtp.received for rcpt in got.rcpt_tos)


def first_time(refusal: str, addresses: set[str] | None = None) -> Callable[[str], str | None]:
    """Refuse each address (or those in ``addresses``) the first time only."""
    seen: set[str] = set()

    def reject(address: str) -> str | None:
        if (addresses is None or address in addresses) and address not in seen:
            seen.add(address)
            return refusal
        return None

    return reject


def test_a_recipient_limit_is_met_with_further_transactions(
    org: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """452 after 2 RCPTs: the rest go in further transactions of the same attempt, once each."""
    smtp.handler.rcpt_limit = 2
    runtime, digests = open_digests(_config(tmp_path, org, smtp), Clock(T0))
    try:
        digests.enqueue("daily", PERIOD)
        [delivery] = digests.outbox.deliver_due()
        item = runtime.ledger.outbox.find("daily", KEY)
    finally:
        runtime.close()
    assert delivery.outcome == OutboxState.SENT
    assert copies(smtp) == Counter(EVERYONE)
    assert len(smtp.received) == 5  # 9 recipients, 2 per transaction
    assert len({got.message["Message-ID"] for got in smtp.received}) == 1
    assert item is not None
    assert (item.state, item.attempts, item.refused) == (OutboxState.SENT, 1, {})
    assert sorted(item.accepted) == sorted(EVERYONE)


def test_busy_now_retried_with_backoff_unknown_reported_once(
    org: SandboxControl, smtp: SMTPServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """450 for one address is retried after the backoff; 550 for another is logged and kept."""
    smtp.handler.rcpt_limit = 3
    busy_once = first_time("450 4.2.1 Mailbox busy, try later", {BUSY})
    smtp.handler.reject = lambda a: "550 5.1.1 No such user" if a == GONE else busy_once(a)
    clock = Clock(T0)
    runtime, digests = open_digests(_config(tmp_path, org, smtp), clock)
    caplog.set_level(logging.WARNING)
    try:
        digests.enqueue("daily", PERIOD)
        [first] = digests.outbox.deliver_due()
        waiting = runtime.ledger.outbox.find("daily", KEY)
        after_first = copies(smtp)
        clock.advance(seconds=30)
        assert digests.outbox.deliver_due() == []  # the backoff (1m) is not over
        clock.advance(seconds=31)
        [second] = digests.outbox.deliver_due()
        done = runtime.ledger.outbox.find("daily", KEY)
    finally:
        runtime.close()

    assert first.outcome == OutboxState.PENDING
    assert first.next_attempt_at == T0 + timedelta(minutes=1)
    assert first.error is not None
    assert f"{BUSY}: 450 4.2.1 Mailbox busy" in first.error
    assert after_first == Counter(a for a in EVERYONE if a not in (BUSY, GONE))
    assert waiting is not None
    assert waiting.state == OutboxState.PENDING
    assert waiting.remaining == [BUSY]
    assert waiting.refused == {GONE: "550 5.1.1 No such user"}
    reported = [r for r in caplog.records if f"{GONE}: 550 5.1.1 No such user" in r.getMessage()]
    assert [r.levelno for r in reported] == [logging.ERROR], "reported once, as an error"

    assert second.outcome == OutboxState.SENT
    assert copies(smtp) == Counter(a for a in EVERYONE if a != GONE)
    assert done is not None
    assert (done.state, done.attempts) == (OutboxState.SENT, 2)
    assert done.last_error is not None
    assert f"refused for good: {GONE}: 550 5.1.1 No such user" in done.last_error


def test_greylisting_every_recipient_then_accepting_sends_once(
    org: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """451 for everyone at first (greylisting): nothing accepted, retried, then one copy each."""
    smtp.handler.reject = first_time("451 4.7.1 Greylisted, try again later")
    clock = Clock(T0)
    runtime, digests = open_digests(_config(tmp_path, org, smtp), clock)
    try:
        digests.enqueue("daily", PERIOD)
        [first] = digests.outbox.deliver_due()
        clock.advance(minutes=1)
        [second] = digests.outbox.deliver_due()
    finally:
        runtime.close()
    assert first.outcome == OutboxState.PENDING
    assert second.outcome == OutboxState.SENT
    assert copies(smtp) == Counter(EVERYONE)


def test_a_transaction_ended_by_421_resends_only_to_those_without_it(
    org: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """The first transaction delivered, the second got 421: the retry skips the first's."""
    smtp.handler.rcpt_limit = 2
    smtp.handler.reject = first_time("421 4.3.0 Shutting down", {TEAM[2]})
    clock = Clock(T0)
    runtime, digests = open_digests(_config(tmp_path, org, smtp), clock)
    try:
        digests.enqueue("daily", PERIOD)
        [first] = digests.outbox.deliver_due()
        clock.advance(minutes=1)
        [second] = digests.outbox.deliver_due()
    finally:
        runtime.close()
    assert first.outcome == OutboxState.PENDING
    assert second.outcome == OutboxState.SENT
    assert copies(smtp) == Counter(EVERYONE)


def test_every_recipient_refused_for_good_is_failed(
    org: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """550 for all of them, over several transactions: failed, each refusal kept, no copy."""
    smtp.handler.rcpt_limit = 4
    smtp.handler.reject = lambda address: "550 5.1.1 No such user"
    runtime, digests = open_digests(_config(tmp_path, org, smtp), Clock(T0))
    try:
        digests.enqueue("daily", PERIOD)
        [delivery] = digests.outbox.deliver_due()
        item = runtime.ledger.outbox.find("daily", KEY)
    finally:
        runtime.close()
    assert delivery.outcome == OutboxState.FAILED
    assert smtp.received == []
    assert item is not None
    assert sorted(item.refused) == sorted(EVERYONE)
    assert item.last_error is not None
    assert "every recipient refused" in item.last_error
