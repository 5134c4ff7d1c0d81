"""kill -9 while a notification is being sent: the one duplicate, with the same key, and no
other notification sent twice."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from automations.errors import SimulatedCrash
from automations.failpoints import Failpoints
from automations.ledger import Ledger, NotificationState
from tests.engine_harness import REPO
from tests.notify_support import PUBLIC, T0, Clock, RecordingSender, apply, outbox

HOOK = "ops-hook"


def key(number: int) -> str:
    return f"escalate-minor/01INCIDENT{number:04d}/step-0"


def wait_for_line(path: Path, line: str, process: subprocess.Popen[str]) -> None:
    """Until the receiver has ``line`` (the process is then blocked after the send)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.exists() and line in path.read_text().splitlines():
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    raise AssertionError(f"the receiver never got {line}")


def test_kill_9_after_the_receiver_got_it_resends_that_one_with_the_same_key(
    tmp_path: Path,
) -> None:
    """Killed between the receiver's acceptance and the ledger's record: the next outbox sends
    that row again with the SAME key (the receiver de-duplicates); the row sent before the
    kill and the row not yet sent go once each."""
    path = tmp_path / "ledger.db"
    with Ledger(path) as ledger:
        for number in (1, 2, 3):
            apply(ledger, key(number), [HOOK], {HOOK: PUBLIC}, number=number)
    received = tmp_path / "received.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "tests.notify_process", str(path), str(received), key(2)]
    process = subprocess.Popen(
        [*command, T0.isoformat()], env=env, cwd=REPO, text=True, stderr=subprocess.PIPE
    )
    try:
        wait_for_line(received, key(2), process)
    finally:
        process.kill()  # SIGKILL: no cleanup, no finally, no ledger write
        process.communicate(timeout=30)
    assert process.returncode == -9
    with Ledger(path) as ledger:
        in_flight = {n.event_key: n.state for n in ledger.notifications.history()}
        assert in_flight == {
            key(1): NotificationState.SENT,
            key(2): NotificationState.SENDING,  # the receiver has it; the ledger does not know
            key(3): NotificationState.QUEUED,
        }
        sender = RecordingSender()
        # A minute later, well within the lease: the killed process is provably gone.
        box = outbox(ledger, {HOOK: sender}, {HOOK: PUBLIC}, Clock(T0 + timedelta(minutes=1)))
        deliveries = box.deliver_due()
        again = box.deliver_due()
        final = {n.event_key: (n.state, n.attempts) for n in ledger.notifications.history()}

    first_process = received.read_text().splitlines()
    assert first_process == [key(1), key(2)]
    assert sender.keys == [key(2), key(3)]
    every_send = first_process + sender.keys
    assert {k: every_send.count(k) for k in every_send} == {key(1): 1, key(2): 2, key(3): 1}
    assert [(d.event_key, d.outcome) for d in deliveries] == [(key(2), "sent"), (key(3), "sent")]
    assert again == []
    assert final == {
        key(1): (NotificationState.SENT, 1),
        key(2): (NotificationState.SENT, 2),
        key(3): (NotificationState.SENT, 1),
    }


def test_a_crash_of_a_sender_that_may_be_alive_waits_for_its_lease(tmp_path: Path) -> None:
    """Crashed right after the send (in-process: its owner looks alive), the row is sent again
    only once the lease has run out, with the same key; then never again."""
    with Ledger(tmp_path / "ledger.db") as ledger:
        apply(ledger, key(1), [HOOK], {HOOK: PUBLIC})
        sender = RecordingSender()
        clock = Clock()
        points = Failpoints()
        points.arm("after_notify_send")
        crashed = outbox(ledger, {HOOK: sender}, {HOOK: PUBLIC}, clock, failpoints=points)
        with pytest.raises(SimulatedCrash):
            crashed.deliver_due()
        survivor = outbox(ledger, {HOOK: sender}, {HOOK: PUBLIC}, clock)

        clock.advance(seconds=(crashed.lease - timedelta(seconds=1)).total_seconds())
        within_lease = survivor.deliver_due()
        clock.advance(seconds=1)
        after_lease = survivor.deliver_due()
        clock.advance(hours=1)
        later = survivor.deliver_due()

    assert within_lease == []
    assert [(d.outcome, d.attempts) for d in after_lease] == [("sent", 2)]
    assert later == []
    assert sender.keys == [key(1), key(1)]
