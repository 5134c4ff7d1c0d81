"""One sender per outbox item: `digest send` beside the daemon never delivers twice.

Each sender is a separate Ledger connection on the same file (as two processes
are); the SMTP server is slowed down so both senders are inside the send window
at once. Whoever claims the item sends it; the other skips it, or (``digest
send``) waits for it and reports what happened.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from automations.digest.outbox import Delivery
from automations.digest.service import Digests
from automations.ledger import OutboxState
from automations.runtime import Runtime
from tests.digest_support import Clock, SMTPServer, open_digests, write_config
from tests.ledger_backends import LedgerTarget
from tests.sandbox_server import SandboxControl
from tests.test_digest_delivery import T0, add

PERIOD = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
KEY = "2026-11-23T08:00:00+00:00"
SLOW = 0.4  # seconds the server takes over each RCPT: both senders overlap in it

T = TypeVar("T")


@pytest.fixture
def org(sandbox: SandboxControl) -> SandboxControl:
    sandbox.reset(incidents=0, now=T0)
    add(sandbox, "Checkout latency", age=timedelta(hours=1))
    return sandbox


@pytest.fixture
def slow_smtp(smtp: SMTPServer) -> SMTPServer:
    def slowly(address: str) -> str | None:
        time.sleep(SLOW / 3)  # three recipients
        return None  # accepted

    smtp.handler.reject = slowly
    return smtp


def both_at_once(first: Callable[[], T], second: Callable[[], T]) -> list[T | BaseException]:
    """Run both from the same instant, in two threads; each one's result or error."""
    start = threading.Barrier(2)
    results: list[T | BaseException] = [RuntimeError("did not finish")] * 2

    def run(index: int, work: Callable[[], T]) -> None:
        start.wait()
        try:
            results[index] = work()
        except BaseException as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def succeeded(result: T | BaseException) -> T:
    if isinstance(result, BaseException):
        raise result
    return result


def two_senders(path: Path, clock: Clock) -> tuple[list[Runtime], Digests, Digests]:
    runtime_a, a = open_digests(path, clock)
    runtime_b, b = open_digests(path, clock)
    assert a.outbox.owner != b.outbox.owner
    return [runtime_a, runtime_b], a, b


def test_two_senders_at_once_deliver_exactly_one_message(
    org: SandboxControl, slow_smtp: SMTPServer, tmp_path: Path, ledger_target: LedgerTarget
) -> None:
    """The daemon's outbox job and another process's (or replica's, on PostgreSQL), at the same
    instant: one message."""
    url = ledger_target if isinstance(ledger_target, str) else None
    config = write_config(tmp_path, org.base_url, slow_smtp.port, store_url=url)
    runtimes, a, b = two_senders(config, Clock(T0))
    try:
        a.enqueue("daily", PERIOD)
        results = both_at_once(a.outbox.deliver_due, b.outbox.deliver_due)
        item = runtimes[0].ledger.outbox.find("daily", KEY)
    finally:
        for runtime in runtimes:
            runtime.close()
    assert len(slow_smtp.received) == 1
    first, second = (succeeded(result) for result in results)
    assert sorted([len(first), len(second)]) == [0, 1], "the loser skips the item"
    [delivery] = first + second
    assert delivery.outcome == OutboxState.SENT
    assert item is not None
    assert (item.state, item.attempts, item.owner) == (OutboxState.SENT, 1, None)


def test_digest_send_beside_the_daemon_reports_the_daemons_send(
    org: SandboxControl, slow_smtp: SMTPServer, tmp_path: Path
) -> None:
    """`digest send` (deliver) while the daemon sends: it waits and reports sent; one message."""
    runtimes, daemon, by_hand = two_senders(
        write_config(tmp_path, org.base_url, slow_smtp.port), Clock(T0)
    )
    try:
        daemon.enqueue("daily", PERIOD)

        def send_by_hand() -> list[Delivery]:
            time.sleep(SLOW / 4)  # the daemon claims first, then `digest send` comes along
            delivery = by_hand.outbox.deliver("daily", KEY)
            return [] if delivery is None else [delivery]

        results = both_at_once(daemon.outbox.deliver_due, send_by_hand)
    finally:
        for runtime in runtimes:
            runtime.close()
    assert len(slow_smtp.received) == 1
    [from_daemon], [from_hand] = (succeeded(result) for result in results)
    assert from_daemon.outcome == OutboxState.SENT
    assert from_hand.outcome == OutboxState.SENT
    assert from_hand.attempts == 1


def test_a_crashed_senders_item_waits_for_its_lease_then_goes_once(
    org: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """A claim left by a dead process blocks others until the lease runs out, then one sends."""
    clock = Clock(T0)
    runtimes, crashed, survivor = two_senders(
        write_config(tmp_path, org.base_url, smtp.port), clock
    )
    try:
        crashed.enqueue("daily", PERIOD)
        [item] = crashed.ledger.outbox.due(now=T0)
        assert crashed.ledger.outbox.claim(
            item.id, owner=crashed.outbox.owner, now=T0, lease_until=T0 + crashed.outbox.lease
        )  # ... and the process died before SMTP
        assert crashed.outbox.lease == timedelta(seconds=30 + 60)  # timeout_seconds + margin
        clock.advance(seconds=89)
        assert survivor.outbox.deliver_due() == []
        clock.advance(seconds=1)
        [delivery] = survivor.outbox.deliver_due()
        clock.advance(minutes=5)
        assert survivor.outbox.deliver_due() == []
    finally:
        for runtime in runtimes:
            runtime.close()
    assert delivery.outcome == OutboxState.SENT
    assert delivery.attempts == 2
    assert len(smtp.received) == 1
