"""The notification outbox: sent once, retried with backoff, rejected, expired, rate-limited
with one summary, one sender per row across threads and connections, and counted for /metrics;
on both backends."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from datetime import timedelta

import pytest

from automations.ledger import Ledger, NotificationState
from automations.ledger.owners import LEASE, this_process
from automations.metrics import Metrics
from automations.notify.notice import SUMMARY
from automations.notify.sender import INCIDENT_UPDATE_CHANNEL
from automations.notify.spec import Policy
from tests.ledger_backends import LedgerTarget
from tests.notify_support import (
    PRIVATE_OK,
    PUBLIC,
    T0,
    Clock,
    RecordingSender,
    apply,
    outbox,
)

HOOK = "ops-hook"


def key(number: int) -> str:
    return f"escalate-minor/01INCIDENT{number:04d}/step-0"


def states(ledger: Ledger) -> dict[str, NotificationState]:
    return {f"{n.event_key} {n.channel}": n.state for n in ledger.notifications.history()}


def test_a_queued_notification_is_sent_once_with_the_event_key(ledger: Ledger) -> None:
    """deliver_due sends each row with key = its event key; a second pass sends nothing."""
    apply(ledger, key(1), [HOOK], {HOOK: PUBLIC})
    sender = RecordingSender()
    box = outbox(ledger, {HOOK: sender}, {HOOK: PUBLIC}, Clock())

    [delivery] = box.deliver_due()
    again = box.deliver_due()

    assert (delivery.outcome, delivery.attempts) == ("sent", 1)
    assert again == []
    [(sent_key, sent_notice)] = sender.accepted
    assert sent_key == key(1)
    assert sent_notice.incident is not None
    assert sent_notice.incident.reference == "INC-1"
    [row] = ledger.notifications.history()
    assert (row.state, row.sent_at, row.owner, row.lease_until) == (
        NotificationState.SENT,
        T0,
        None,
        None,
    )


def test_retries_with_backoff_then_sent_once_logged_once(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    """Two 503s: queued again after 30 s, then 60 s; sent on the third attempt; one warning."""
    apply(ledger, key(1), [HOOK], {HOOK: PUBLIC})
    clock = Clock()
    sender = RecordingSender(fail=2)
    box = outbox(ledger, {HOOK: sender}, {HOOK: PUBLIC}, clock)

    with caplog.at_level(logging.DEBUG, logger="automations.notify"):
        first = box.deliver_due()
        clock.advance(seconds=29)
        early = box.deliver_due()
        clock.advance(seconds=1)
        second = box.deliver_due()
        clock.advance(seconds=59)
        still_early = box.deliver_due()
        clock.advance(seconds=1)
        third = box.deliver_due()

    assert [d.outcome for d in first] == ["retry"]
    assert first[0].next_attempt_at == T0 + timedelta(seconds=30)
    assert early == []
    assert [d.outcome for d in second] == ["retry"]
    assert second[0].next_attempt_at == T0 + timedelta(seconds=90)
    assert still_early == []
    assert [(d.outcome, d.attempts) for d in third] == [("sent", 3)]
    assert sender.keys == [key(1)]
    assert sender.calls == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "retrying with backoff" in warnings[0].getMessage()
    [row] = ledger.notifications.history()
    assert (row.state, row.attempts) == (NotificationState.SENT, 3)
    assert row.last_error == "receiver unavailable: HTTP 503 (call 2)"


def test_a_rejected_notification_fails_and_is_not_retried(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    """NotifyRejected: failed at once with the receiver's answer, logged as an error."""
    apply(ledger, key(1), [HOOK], {HOOK: PUBLIC})
    clock = Clock()
    sender = RecordingSender(reject=True)
    box = outbox(ledger, {HOOK: sender}, {HOOK: PUBLIC}, clock)

    with caplog.at_level(logging.ERROR, logger="automations.notify"):
        [delivery] = box.deliver_due()
    clock.advance(hours=1)
    later = box.deliver_due()

    assert delivery.outcome == "failed"
    assert later == []
    assert sender.calls == 1
    [row] = ledger.notifications.history()
    assert row.state is NotificationState.FAILED
    assert row.last_error == "refused: receiver refused: HTTP 410 Gone"
    [record] = caplog.records
    assert record.getMessage() == (
        f"notification {key(1)} to {HOOK} failed, not retried: refused: receiver refused: "
        "HTTP 410 Gone"
    )


def test_a_notification_not_sent_within_expire_after_expires(ledger: Ledger) -> None:
    """Always 503 with expire_after 5m: tried at 0 s, 30 s, 90 s, 210 s, then expired,
    because the next try (450 s) would be past the expiry; never tried again."""
    policy = Policy(expire_after=timedelta(minutes=5))
    apply(ledger, key(1), [HOOK], {HOOK: policy})
    clock = Clock()
    sender = RecordingSender(fail=1000)
    box = outbox(ledger, {HOOK: sender}, {HOOK: policy}, clock)

    outcomes = []
    for _ in range(20):
        outcomes += [d.outcome for d in box.deliver_due()]
        clock.advance(seconds=30)

    assert outcomes == ["retry", "retry", "retry", "expired"]
    assert sender.calls == 4
    [row] = ledger.notifications.history()
    assert row.state is NotificationState.EXPIRED
    assert row.last_error == (
        "not delivered within expire_after (5m) of being queued, after 4 attempts; last "
        "error: receiver unavailable: HTTP 503 (call 4)"
    )


def test_a_row_found_past_its_expiry_is_expired_unsent(ledger: Ledger) -> None:
    """A row queued while the daemon was down for longer than expire_after is not sent late."""
    apply(ledger, key(1), [HOOK], {HOOK: PUBLIC})
    sender = RecordingSender()
    box = outbox(ledger, {HOOK: sender}, {HOOK: PUBLIC}, Clock(T0 + timedelta(hours=6)))

    [delivery] = box.deliver_due()

    assert delivery.outcome == "expired"
    assert sender.calls == 0
    assert ledger.notifications.history()[0].last_error == (
        "not delivered within expire_after (6h) of being queued, after 0 attempts; last error: none"
    )


def test_a_channel_gone_from_the_config_fails_its_rows(ledger: Ledger) -> None:
    """A row for a channel no longer configured is failed with a reason that says so."""
    apply(ledger, key(1), [HOOK], {HOOK: PUBLIC})
    box = outbox(ledger, {}, {}, Clock())

    [delivery] = box.deliver_due()

    assert delivery.outcome == "failed"
    assert ledger.notifications.history()[0].last_error == (
        "channel 'ops-hook' is no longer configured (not in [[channels]]): not sent"
    )


def test_a_sender_bug_is_retried_without_its_text(ledger: Ledger) -> None:
    """An exception that is not a NotifyError: retried; only its type is recorded (its text
    may carry a channel URL with a secret in it)."""

    class Broken:
        def send(self, notice: object, *, key: str) -> None:
            raise ValueError("https://hooks.example.com/T0/SECRET-TOKEN is not valid")

    apply(ledger, key(1), [HOOK], {HOOK: PUBLIC})
    box = outbox(ledger, {HOOK: Broken()}, {HOOK: PUBLIC}, Clock())

    [delivery] = box.deliver_due()

    assert delivery.outcome == "retry"
    row = ledger.notifications.history()[0]
    assert row.last_error == "the ops-hook sender failed unexpectedly (ValueError)"


def test_announce_goes_to_the_incident_timeline_with_its_own_policy(ledger: Ledger) -> None:
    """@incident needs no policy of its own: a private incident's update is sent there."""
    apply(ledger, key(1), [], {}, private=True, announce="Escalated automatically")
    timeline = RecordingSender()
    box = outbox(ledger, {INCIDENT_UPDATE_CHANNEL: timeline}, {}, Clock())

    [delivery] = box.deliver_due()

    assert delivery.outcome == "sent"
    [(sent_key, sent)] = timeline.accepted
    assert sent_key == key(1)
    assert sent.details == {"message": "Escalated automatically"}


def test_two_outboxes_in_two_threads_send_each_row_once(ledger_target: LedgerTarget) -> None:
    """Two senders (own connections, as two processes or two replicas) racing over 20 rows:
    20 sends."""
    path = ledger_target
    with Ledger(path) as setup:
        for number in range(1, 21):
            apply(setup, key(number), [HOOK], {HOOK: PUBLIC}, number=number)
    sender = RecordingSender(delay=0.01)  # both inside the send window at once
    ledgers = [Ledger(path), Ledger(path)]
    boxes = [outbox(led, {HOOK: sender}, {HOOK: PUBLIC}, Clock()) for led in ledgers]
    assert boxes[0].owner != boxes[1].owner
    start = threading.Barrier(2)
    counts: list[int] = []

    def run(index: int) -> None:
        start.wait()
        counts.append(len(boxes[index].deliver_due()))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for led in ledgers:
        led.close()

    assert sorted(sender.keys) == sorted(key(n) for n in range(1, 21))
    assert sum(counts) == 20
    with Ledger(path) as check:
        assert {n.state for n in check.notifications.history()} == {NotificationState.SENT}
        assert {n.attempts for n in check.notifications.history()} == {1}


def test_a_live_senders_lease_is_respected_and_a_dead_ones_is_not(ledger: Ledger) -> None:
    """A row another live process holds waits for its lease to run out; one whose process
    is provably gone (its PID no longer exists on this host) is taken over at once."""
    apply(ledger, key(1), [HOOK], {HOOK: PUBLIC})
    apply(ledger, key(2), [HOOK], {HOOK: PUBLIC}, number=2)
    me = this_process()
    live = f"{me.host}:{os.getppid()}:parent.abc123"  # pytest's parent: alive
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    dead = f"{me.host}:{int(finished.stdout)}:gone.abc123"
    first, second = ledger.notifications.due(now=T0)
    lease_until = T0 + LEASE
    assert ledger.notifications.claim(first, owner=live, now=T0, lease_until=lease_until)
    assert ledger.notifications.claim(second, owner=dead, now=T0, lease_until=lease_until)
    clock = Clock(T0 + timedelta(minutes=1))
    sender = RecordingSender()
    box = outbox(ledger, {HOOK: sender}, {HOOK: PUBLIC}, clock)

    taken_over = box.deliver_due()
    clock.now = lease_until
    after_lease = box.deliver_due()

    assert [(d.event_key, d.attempts) for d in taken_over] == [(key(2), 2)]
    assert [(d.event_key, d.attempts) for d in after_lease] == [(key(1), 2)]
    assert sender.keys == [key(2), key(1)]


def test_max_per_hour_holds_back_then_one_summary_says_how_many(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    """35 notices at max_per_hour 30: 30 sent, 5 held; an hour later ONE summary says 5."""
    policy = Policy(max_per_hour=30, expire_after=timedelta(hours=6))
    for number in range(1, 36):
        apply(ledger, key(number), [HOOK], {HOOK: policy}, number=number)
    clock = Clock()
    sender = RecordingSender()
    box = outbox(ledger, {HOOK: sender}, {HOOK: policy}, clock)

    with caplog.at_level(logging.WARNING, logger="automations.notify"):
        first = box.deliver_due()
        clock.advance(minutes=59, seconds=59)
        still_full = box.deliver_due()
        clock.advance(seconds=1)
        summary_pass = box.deliver_due()
        clock.advance(hours=2)
        afterwards = box.deliver_due()

    outcomes = [d.outcome for d in first]
    assert outcomes == ["sent"] * 30 + ["held"] * 5
    assert sender.keys[:30] == [key(n) for n in range(1, 31)]  # oldest first; 31-35 never sent
    assert still_full == []
    [summary] = summary_pass
    assert (summary.outcome, summary.event_key) == ("sent", "summary/ops-hook/31")
    assert afterwards == []
    summary_key, summary_notice = sender.accepted[-1]
    assert summary_key == "summary/ops-hook/31"
    assert summary_notice.type == SUMMARY
    assert summary_notice.incident is None
    assert summary_notice.details == {"held_back": 5, "since": "2026-11-23T09:00:00Z"}
    assert summary_notice.reason == (
        "5 notifications held back by max_per_hour = 30 since 2026-11-23T09:00:00Z"
    )
    assert len(sender.accepted) == 31
    counts: dict[NotificationState, int] = {}
    for row in ledger.notifications.history():
        counts[row.state] = counts.get(row.state, 0) + 1
    assert counts == {NotificationState.SENT: 31, NotificationState.SUMMARISED: 5}
    assert [r.getMessage() for r in caplog.records] == [
        f"notification {key(31)} to ops-hook held: channel ops-hook sent its max_per_hour = 30 "
        "in the last hour: not sent, counted in the summary that follows",
        "channel ops-hook: 5 notifications were held back by max_per_hour since "
        "2026-11-23T09:00:00Z; one summary queued (summary/ops-hook/31)",
    ]  # once when holding began (not per row), once for the summary


def test_a_summary_goes_first_when_the_channel_has_room(ledger: Ledger) -> None:
    """Room for one more this hour and a new row waiting: the summary takes the room first."""
    policy = Policy(max_per_hour=2, expire_after=timedelta(hours=6))
    for number in range(1, 4):
        apply(ledger, key(number), [HOOK], {HOOK: policy}, number=number)
    clock = Clock()
    sender = RecordingSender()
    box = outbox(ledger, {HOOK: sender}, {HOOK: policy}, clock)
    box.deliver_due()  # 1, 2 sent; 3 held
    clock.advance(hours=1)
    apply(ledger, key(4), [HOOK], {HOOK: policy}, number=4, now=clock.now)

    box.deliver_due()

    assert sender.keys == [key(1), key(2), "summary/ops-hook/3", key(4)]


def test_outcomes_are_counted_for_metrics(ledger: Ledger) -> None:
    """on_outcome feeds automations_notifications_total{channel,outcome}."""
    policies = {HOOK: Policy(max_per_hour=1), "mail": PRIVATE_OK, "gone": PUBLIC}
    metrics = Metrics(stale_after=timedelta(minutes=5))
    apply(ledger, key(1), [HOOK, "mail"], policies)
    apply(ledger, key(2), [HOOK, "gone"], policies, number=2)
    senders = {HOOK: RecordingSender(), "mail": RecordingSender(fail=1)}
    clock = Clock()
    box = outbox(ledger, senders, policies, clock, metrics.observe_notification)

    box.deliver_due()
    clock.advance(minutes=1)
    box.deliver_due()

    def value(channel: str, outcome: str) -> float | None:
        return metrics.registry.get_sample_value(
            "automations_notifications_total", {"channel": channel, "outcome": outcome}
        )

    assert value(HOOK, "sent") == 1
    assert value(HOOK, "held") == 1
    assert value("mail", "retry") == 1
    assert value("mail", "sent") == 1
    assert value("gone", "failed") == 1
    assert value(HOOK, "failed") is None


def test_nothing_is_sent_once_the_daemon_stops(ledger: Ledger) -> None:
    """The stop event set: the rows stay queued for the next start."""
    apply(ledger, key(1), [HOOK], {HOOK: PUBLIC})
    sender = RecordingSender()
    box = outbox(ledger, {HOOK: sender}, {HOOK: PUBLIC}, Clock())
    box.stopping = threading.Event()
    box.stopping.set()

    assert box.deliver_due() == []
    assert sender.calls == 0
    assert states(ledger) == {f"{key(1)} {HOOK}": NotificationState.QUEUED}
