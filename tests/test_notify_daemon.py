"""Wiring: the daemon delivers notifications in a job of its own (never inside a cycle's lock),
`once` delivers what is due before it exits, and nothing goes while paused."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest

from automations.daemon import Daemon
from automations.notify.jobs import NOTIFY_EVERY, deliver_notifications
from automations.runtime import Runtime, make_notification_outbox
from tests.engine_harness import Harness
from tests.notify_support import PUBLIC, RecordingSender, apply
from tests.test_engine_sandbox import ESCALATE
from tests.test_health_metrics import metric_samples

H = timedelta(hours=1)
HOOK = "ops-hook"
KEY = "escalate-minor/01INCIDENT0001/step-0"

pytestmark = pytest.mark.usefixtures("restore_logging")


def queue(runtime: Runtime, number: int = 1) -> str:
    """A row queued as the engine queues it, at the API's "now" (the outbox's clock)."""
    key = f"escalate-minor/01INCIDENT{number:04d}/step-0"
    apply(runtime.ledger, key, [HOOK], {HOOK: PUBLIC}, number=number, now=runtime.engine.clock())
    return key


def wait_until(done: Any, what: str) -> None:
    deadline = time.monotonic() + 30
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_the_daemon_job_sends_while_a_cycle_holds_its_lock(harness: Harness) -> None:
    """The notifications job runs at start-up and every few seconds, in its own lock: a rule
    cycle (and a digest send) holding theirs does not hold it back."""
    harness.write(ESCALATE)
    runtime = harness.runtime()
    sender = RecordingSender()
    runtime.notifications = make_notification_outbox(runtime, {HOOK: sender}, {HOOK: PUBLIC})
    daemon = Daemon(runtime)
    try:
        key = queue(runtime)
        daemon.add_jobs()
        job = daemon.scheduler.get_job("notifications")
        assert job is not None
        assert job.trigger.interval == NOTIFY_EVERY
        with daemon._lock, daemon.digest_jobs.lock:  # a long cycle, a slow SMTP server
            daemon.scheduler.start()
            wait_until(lambda: sender.keys == [key], "the notification")
    finally:
        if daemon.scheduler.running:
            daemon.scheduler.shutdown(wait=True)
        runtime.close()


def test_a_stuck_receiver_does_not_hold_back_a_rule_cycle(harness: Harness) -> None:
    """A send that never returns (up to its lease) runs beside rule cycles, not before them."""
    harness.write(ESCALATE)
    stuck = harness.add("Stuck", age=3 * H)
    runtime = harness.runtime()
    key = queue(runtime)
    sender = RecordingSender(hang_after=key)
    outbox = make_notification_outbox(runtime, {HOOK: sender}, {HOOK: PUBLIC})
    daemon = Daemon(runtime, notifications=outbox)
    daemon.add_jobs()  # the scheduler is not started: the test runs the jobs itself
    sending = threading.Thread(target=daemon.notification_jobs.run)
    try:
        sending.start()
        wait_until(lambda: sender.keys == [key], "the receiver to get it")
        daemon._job("every 1m")
        cycle_done_while_stuck = sending.is_alive()
    finally:
        sender.released.set()
        sending.join(30)
        runtime.close()

    assert cycle_done_while_stuck
    assert harness.severity(stuck["id"]) == "Major"


def test_the_daemon_counts_notifications_in_metrics(harness: Harness) -> None:
    """/metrics shows automations_notifications_total by channel and outcome."""
    harness.write("[server]\nenabled = true\nport = 0\n" + ESCALATE)
    runtime = harness.runtime()
    policies = {HOOK: PUBLIC, "mail": PUBLIC}
    senders = {HOOK: RecordingSender(), "mail": RecordingSender(reject=True)}
    daemon = Daemon(runtime, notifications=make_notification_outbox(runtime, senders, policies))
    try:
        now = runtime.engine.clock()
        apply(runtime.ledger, KEY, [HOOK, "mail"], policies, now=now)
        daemon.serve_health()
        assert daemon.health_server is not None
        daemon.notification_jobs.run()
        samples = metric_samples(httpx.get(f"{daemon.health_server.url}/metrics").text)
    finally:
        daemon.stop_health()
        runtime.close()

    name = "automations_notifications_total"
    assert samples[(name, (("channel", HOOK), ("outcome", "sent")))] == 1
    assert samples[(name, (("channel", "mail"), ("outcome", "failed")))] == 1


def test_nothing_is_sent_while_paused(harness: Harness) -> None:
    """`automations pause`: the rows stay queued; after `resume` they go."""
    harness.write(ESCALATE)
    runtime = harness.runtime()
    try:
        queue(runtime)
        sender = RecordingSender()
        outbox = make_notification_outbox(runtime, {HOOK: sender}, {HOOK: PUBLIC})
        runtime.ledger.kill_switch.pause(
            by="oncall@host", reason="noisy", now=runtime.engine.clock()
        )

        paused = deliver_notifications(runtime.ledger, outbox)
        runtime.ledger.kill_switch.resume()
        resumed = deliver_notifications(runtime.ledger, outbox)
    finally:
        runtime.close()

    assert paused == []
    assert [d.outcome for d in resumed] == ["sent"]
    assert sender.calls == 1


ESCALATE_AND_NOTIFY = (
    ESCALATE
    + 'notify = ["ops-hook"]\n\n[[channels]]\nname = "ops-hook"\ntype = "webhook"\n'
    + 'url = "http://127.0.0.1:9/hooks"\n'
)


def test_a_cycle_that_applied_actions_sends_their_notifications_at_once(
    harness: Harness,
) -> None:
    """The scheduler is not started, so no periodic pass runs: the cycle's own wake-up sends
    the notification of what it applied, instead of it waiting up to NOTIFY_EVERY."""
    harness.write(ESCALATE_AND_NOTIFY)
    harness.add("Due", age=3 * H)
    runtime = harness.runtime()
    sender = RecordingSender()
    outbox = make_notification_outbox(runtime, {HOOK: sender}, {HOOK: PUBLIC})
    daemon = Daemon(runtime, notifications=outbox)
    try:
        daemon.add_jobs()
        daemon._job("every 1m")
        wait_until(lambda: len(sender.keys) == 1, "the woken delivery pass")
        assert sender.keys[0].startswith("escalate-minor/")
    finally:
        daemon.stopping.set()
        runtime.close()
