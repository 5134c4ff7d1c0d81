"""The ledger on both backends (a real SQLite file under tmp_path, a real PostgreSQL
database), and what is SQLite's alone: the file lock, WAL, the file itself."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypedDict

import pytest

from automations.errors import AutomationsError, LedgerError, LedgerLocked
from automations.ledger import (
    EventState,
    Ledger,
    OutboxItem,
    OutboxState,
    RunStatus,
)
from automations.ledger.migrations import MIGRATION_SET
from tests.ledger_backends import LedgerTarget, older_ledger, raw_rows

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)
KEY = "escalate/01INC/step-0"
BODY = {"incident": {"severity_id": "01SEV-MAJOR"}, "notify_incident_channel": True}


class Counts(TypedDict):
    incidents_seen: int
    actions_planned: int
    actions_applied: int
    actions_failed: int
    actions_skipped: int
    api_requests: int


ZERO = Counts(
    incidents_seen=0,
    actions_planned=0,
    actions_applied=0,
    actions_failed=0,
    actions_skipped=0,
    api_requests=0,
)
ALL_MIGRATIONS = [
    "0001_events",
    "0002_releases",
    "0003_runs",
    "0004_catalog",
    "0005_outbox",
    "0006_meta",
    "0007_events_incident_name",
    "0008_rearm",
    "0009_run_rules",
    "0010_outbox_recipients",
    "0011_outbox_lease",
    "0012_owners_quarantine",
    "0013_safety",
    "0014_notifications",
    "0015_webhook_deliveries",
    "0016_event_kinds",
]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A SQLite file, for what only SQLite has (the file lock, WAL, the file itself)."""
    return tmp_path / "automations.db"


def claim(
    ledger: Ledger,
    key: str = KEY,
    *,
    rule: str = "escalate",
    incident_id: str = "01INC",
    reference: str = "INC-1",
    now: datetime = T0,
    dry_run: bool = False,
) -> bool:
    return ledger.events.claim(
        rule=rule,
        incident_id=incident_id,
        incident_reference=reference,
        event_key=key,
        reason="live for 2h5m >= 2h",
        request_body=BODY,
        dry_run=dry_run,
        now=now,
    )


# -- claim -------------------------------------------------------------------


def test_claim_records_the_planned_event(ledger: Ledger) -> None:
    """A claim stores every field as given, PLANNED, with one attempt."""
    assert claim(ledger, dry_run=True)
    event = ledger.events.get("escalate/01INC/step-0")
    assert event is not None
    assert (event.rule, event.incident_id, event.incident_reference) == (
        "escalate",
        "01INC",
        "INC-1",
    )
    assert event.state is EventState.PLANNED
    assert event.reason == "live for 2h5m >= 2h"
    assert event.request_body == BODY
    assert (event.request_id, event.error, event.finished_at) == (None, None, None)
    assert event.dry_run is True
    assert event.claimed_at == T0
    assert event.claimed_at.tzinfo is not None
    assert event.attempts == 1
    assert ledger.events.get("nope") is None


def test_claim_is_unique(ledger: Ledger) -> None:
    """A second claim of the same key is refused; another key is not."""
    assert claim(ledger)
    assert not claim(ledger)
    assert claim(ledger, "escalate/01INC/step-1")


def test_claim_is_unique_in_any_state(ledger: Ledger) -> None:
    """A finished key stays taken: never applied twice, even if a human undoes it."""
    claim(ledger)
    ledger.events.mark_failed("escalate/01INC/step-0", error="boom")
    assert not claim(ledger)


def test_claim_is_unique_across_ledger_objects(ledger_target: LedgerTarget) -> None:
    """Two Ledger objects (two connections) on one ledger share the unique key."""
    with Ledger(ledger_target) as first, Ledger(ledger_target) as second:
        assert claim(first)
        assert not claim(second)


def race(claimers: list[Callable[[], bool]]) -> list[bool]:
    barrier = threading.Barrier(len(claimers))
    results: list[bool] = []
    errors: list[BaseException] = []

    def run(claimer: Callable[[], bool]) -> None:
        barrier.wait()
        try:
            results.append(claimer())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in claimers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not errors
    return results


def test_claim_race_between_threads_sharing_a_ledger(ledger: Ledger) -> None:
    """Eight threads claiming one key through one Ledger: exactly one wins."""
    results = race([partial(claim, ledger)] * 8)
    assert sorted(results) == [False] * 7 + [True]


def test_claim_race_between_threads_with_own_connections(ledger_target: LedgerTarget) -> None:
    """Eight threads, each with its own Ledger on the same ledger: exactly one wins."""
    ledgers = [Ledger(ledger_target) for _ in range(8)]
    try:
        results = race([partial(claim, opened) for opened in ledgers])
    finally:
        for opened in ledgers:
            opened.close()
    assert sorted(results) == [False] * 7 + [True]


# -- confirming ----------------------------------------------------------------

LATER = T0 + timedelta(seconds=3)


@pytest.mark.parametrize(
    ("mark", "state", "expected"),
    [
        (
            lambda ledger: ledger.events.mark_applied(KEY, request_id="req-1", now=LATER),
            EventState.APPLIED,
            {"request_id": "req-1", "error": None, "reason": "live for 2h5m >= 2h"},
        ),
        (
            lambda ledger: ledger.events.mark_skipped(KEY, reason="already Major", now=LATER),
            EventState.SKIPPED,
            {"request_id": None, "error": None, "reason": "already Major"},
        ),
        (
            lambda ledger: ledger.events.mark_failed(KEY, error="422 invalid severity", now=LATER),
            EventState.FAILED,
            {"request_id": None, "error": "422 invalid severity", "reason": "live for 2h5m >= 2h"},
        ),
        (
            lambda ledger: ledger.events.mark_reconciled(
                KEY, reason="incident is Major", now=LATER
            ),
            EventState.RECONCILED,
            {"request_id": None, "error": None, "reason": "incident is Major"},
        ),
    ],
)
def test_each_transition_from_planned(
    ledger: Ledger, mark: Callable[[Ledger], None], state: EventState, expected: dict[str, Any]
) -> None:
    """Each mark_* moves PLANNED to its state, stamps finished_at and keeps its detail."""
    claim(ledger)
    mark(ledger)
    event = ledger.events.get(KEY)
    assert event is not None
    assert event.state is state
    assert event.finished_at == LATER
    assert {name: getattr(event, name) for name in expected} == expected
    assert event.request_body == BODY


def test_marking_a_finished_or_unknown_event_is_refused(ledger: Ledger) -> None:
    """Only PLANNED changes: marking twice or marking a stranger is a LedgerError."""
    claim(ledger)
    ledger.events.mark_applied(KEY, request_id="req-1")
    with pytest.raises(LedgerError, match="already applied"):
        ledger.events.mark_failed(KEY, error="late")
    with pytest.raises(LedgerError, match="not in ledger"):
        ledger.events.mark_applied("escalate/unknown/step-0", request_id=None)
    event = ledger.events.get(KEY)
    assert event is not None
    assert event.state is EventState.APPLIED


def test_release_deletes_a_planned_claim_and_counts_attempts(ledger: Ledger) -> None:
    """A released key can be claimed again, and the new claim counts the earlier try."""
    claim(ledger)
    ledger.events.release(KEY)
    assert ledger.events.get(KEY) is None
    assert claim(ledger)
    event = ledger.events.get(KEY)
    assert event is not None
    assert event.attempts == 2
    ledger.events.release(KEY)
    claim(ledger)
    assert ledger.events.done_keys([KEY, "escalate/other"]) == {KEY}
    event = ledger.events.get(KEY)
    assert event is not None
    assert event.attempts == 3


@pytest.mark.parametrize(
    "finish",
    [
        lambda ledger: ledger.events.mark_applied(KEY, request_id="r"),
        lambda ledger: ledger.events.mark_skipped(KEY, reason="r"),
        lambda ledger: ledger.events.mark_failed(KEY, error="e"),
        lambda ledger: ledger.events.mark_reconciled(KEY, reason="r"),
    ],
)
def test_release_refuses_anything_not_planned(
    ledger: Ledger, finish: Callable[[Ledger], None]
) -> None:
    """Releasing a finished event would allow a second edit, so it is refused."""
    claim(ledger)
    finish(ledger)
    with pytest.raises(LedgerError, match="only a planned event"):
        ledger.events.release(KEY)
    assert ledger.events.get(KEY) is not None


def test_release_of_an_unknown_key_is_refused(ledger: Ledger) -> None:
    """Releasing a key that was never claimed is a LedgerError naming it."""
    with pytest.raises(LedgerError, match="escalate/x/step-0"):
        ledger.events.release("escalate/x/step-0")


def test_unconfirmed_lists_planned_oldest_first(ledger: Ledger) -> None:
    """unconfirmed() is what a restart reconciles: PLANNED only, oldest claim first."""
    claim(ledger, "r/b/0", now=T0 + timedelta(minutes=2))
    claim(ledger, "r/a/0", now=T0)
    claim(ledger, "r/c/0", now=T0 + timedelta(minutes=1))
    claim(ledger, "r/d/0", now=T0 - timedelta(minutes=1))
    ledger.events.mark_applied("r/d/0", request_id=None)
    assert [e.event_key for e in ledger.events.unconfirmed()] == ["r/a/0", "r/c/0", "r/b/0"]


# -- history -------------------------------------------------------------------


def test_events_filters(ledger: Ledger) -> None:
    """events() filters by rule, incident id or reference, since and states; newest first."""
    claim(ledger, "esc/01A/0", rule="esc", incident_id="01A", reference="INC-1", now=T0)
    claim(ledger, "esc/01B/0", rule="esc", incident_id="01B", reference="INC-2", now=T0 + 1 * H)
    claim(ledger, "sync/01A/0", rule="sync", incident_id="01A", reference="INC-1", now=T0 + 2 * H)
    ledger.events.mark_applied("esc/01A/0", request_id="r")
    ledger.events.mark_skipped("sync/01A/0", reason="human did it")

    def keys(**filters: Any) -> list[str]:
        return [e.event_key for e in ledger.events.history(**filters)]

    assert keys() == ["sync/01A/0", "esc/01B/0", "esc/01A/0"]
    assert keys(rule="esc") == ["esc/01B/0", "esc/01A/0"]
    assert keys(incident="01A") == ["sync/01A/0", "esc/01A/0"]
    assert keys(incident="INC-2") == ["esc/01B/0"]
    assert keys(incident="inc-2") == ["esc/01B/0"]
    assert keys(since=T0 + 1 * H) == ["sync/01A/0", "esc/01B/0"]
    assert keys(states=[EventState.APPLIED, EventState.SKIPPED]) == ["sync/01A/0", "esc/01A/0"]
    assert keys(states=[]) == []
    assert keys(rule="esc", incident="INC-1", states=[EventState.APPLIED]) == ["esc/01A/0"]
    assert keys(limit=1) == ["sync/01A/0"]


def test_done_keys_are_exact_matches_in_batches(ledger: Ledger) -> None:
    """done_keys() matches keys exactly (case-sensitive, no wildcards), past one batch."""
    for key in ["my_rule/1/0", "my_rule/2/0", "myXrule/1/0", "My_rule/1/0", "my_rule2/1/0"]:
        claim(ledger, key)
    assert ledger.events.done_keys(["my_rule/1/0", "my_%/1/0", "MY_RULE/2/0"]) == {"my_rule/1/0"}
    assert ledger.events.done_keys([]) == set()
    many = [f"absent/{n}" for n in range(1200)] + ["my_rule/2/0", "My_rule/1/0"]
    assert ledger.events.done_keys(many) == {"my_rule/2/0", "My_rule/1/0"}


def test_naive_datetimes_are_refused(ledger: Ledger) -> None:
    """A naive datetime would be stored as the wrong instant, so it is an error."""
    with pytest.raises(ValueError, match="naive"):
        claim(ledger, now=datetime(2026, 1, 1))


def test_other_timezones_are_stored_as_utc(ledger: Ledger) -> None:
    """An aware non-UTC time is stored and returned as the same instant in UTC."""
    from zoneinfo import ZoneInfo

    claim(ledger, now=datetime(2026, 7, 1, 9, 0, tzinfo=ZoneInfo("Europe/London")))
    event = ledger.events.get(KEY)
    assert event is not None
    assert event.claimed_at == datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
    assert event.claimed_at.utcoffset() == timedelta(0)


# -- runs ----------------------------------------------------------------------


def test_runs_start_finish_and_last_successful(ledger: Ledger) -> None:
    """Runs record counts and status; last_successful_run skips failures and running ones."""
    assert ledger.runs.last_successful() is None
    counts = Counts(
        incidents_seen=12,
        actions_planned=3,
        actions_applied=2,
        actions_failed=0,
        actions_skipped=1,
        api_requests=5,
    )
    first = ledger.runs.start("escalate", now=T0)
    ledger.runs.finish(first, **counts, now=T0 + timedelta(seconds=2))
    second = ledger.runs.start("escalate", now=T0 + H)
    ledger.runs.finish(second, **counts, error="ledger full", now=T0 + H)
    third = ledger.runs.start("sync", now=T0 + 2 * H)

    runs = ledger.runs.history()
    assert [r.id for r in runs] == [third, second, first]
    assert runs[0].status is RunStatus.RUNNING
    assert runs[0].finished_at is None
    assert runs[0].incidents_seen == 0
    assert runs[1].status is RunStatus.FAILED
    assert runs[1].error == "ledger full"
    done = runs[2]
    assert done.status is RunStatus.OK
    assert (done.schedule, done.started_at, done.finished_at) == (
        "escalate",
        T0,
        T0 + timedelta(seconds=2),
    )
    assert {name: getattr(done, name) for name in counts} == counts
    assert [r.id for r in ledger.runs.history(schedule="sync")] == [third]
    assert [r.id for r in ledger.runs.history(limit=1)] == [third]

    last = ledger.runs.last_successful()
    assert last is not None
    assert last.id == first
    last_escalate = ledger.runs.last_successful("escalate")
    assert last_escalate is not None
    assert last_escalate.id == first
    assert ledger.runs.last_successful("sync") is None


def test_finish_run_twice_or_unknown_is_refused(ledger: Ledger) -> None:
    """A run finishes once; an unknown id is a LedgerError."""
    run_id = ledger.runs.start("escalate")
    ledger.runs.finish(run_id, **ZERO)
    with pytest.raises(LedgerError, match=f"run {run_id}"):
        ledger.runs.finish(run_id, **ZERO)
    with pytest.raises(LedgerError, match="run 999"):
        ledger.runs.finish(999, **ZERO)


# -- catalog -------------------------------------------------------------------


def test_catalog_round_trip(ledger: Ledger) -> None:
    """Saved items come back as saved, with fetched_at; saving again replaces them."""
    assert ledger.catalog.load("severities") is None
    items = [{"id": "01SEV", "name": "Minor", "rank": 1, "description": "Ünïcode ok"}]
    ledger.catalog.save("severities", items, now=T0)
    assert ledger.catalog.load("severities") == (items, T0)
    ledger.catalog.save("severities", [], now=T0 + H)
    assert ledger.catalog.load("severities") == ([], T0 + H)
    assert ledger.catalog.load("statuses") is None


# -- outbox --------------------------------------------------------------------


def enqueue(
    ledger: Ledger, period: str = "2026-11-23T08:00+00:00", *, digest: str = "daily"
) -> bool:
    return ledger.outbox.enqueue(
        digest=digest,
        period=period,
        subject="Incidents: 3 open",
        recipients=["oncall@example.com", "sre@example.com"],
        message=b"Message-ID: <d1@example.com>\r\n\r\nhello\r\n",
        message_id="<d1@example.com>",
        expires_at=T0 + 12 * H,
        now=T0,
    )


def test_outbox_enqueue_is_unique_per_digest_and_period(ledger: Ledger) -> None:
    """A (digest, period) is queued once; another period or digest is a new item."""
    assert enqueue(ledger)
    assert not enqueue(ledger)
    assert enqueue(ledger, "2026-11-24T08:00+00:00")
    assert enqueue(ledger, digest="weekly")
    [item, *_] = ledger.outbox.due(now=T0)
    assert item.state is OutboxState.PENDING
    assert item.recipients == ["oncall@example.com", "sre@example.com"]
    assert item.message == b"Message-ID: <d1@example.com>\r\n\r\nhello\r\n"
    assert (item.message_id, item.attempts, item.next_attempt_at) == ("<d1@example.com>", 0, T0)
    assert (item.created_at, item.expires_at, item.sent_at) == (T0, T0 + 12 * H, None)


def claim_item(ledger: Ledger, item_id: int, at: datetime, owner: str = "a") -> OutboxItem | None:
    return ledger.outbox.claim(item_id, owner=owner, now=at, lease_until=at + 2 * M)


def test_outbox_due_claim_retry_sent(ledger: Ledger) -> None:
    """An item is due until sent: a claim holds it for one lease, retry waits, sent is final."""
    enqueue(ledger)
    [item] = ledger.outbox.due(now=T0)
    assert ledger.outbox.due(now=T0 - timedelta(seconds=1)) == []

    sending = claim_item(ledger, item.id, T0)
    assert sending is not None
    assert (sending.state, sending.attempts, sending.owner) == (OutboxState.SENDING, 1, "a")
    assert sending.lease_until == T0 + 2 * M
    assert ledger.outbox.due(now=T0 + M) == []  # held by a live sender
    assert claim_item(ledger, item.id, T0 + M, owner="b") is None

    ledger.outbox.mark_retry(item.id, owner="a", error="421 later", next_attempt_at=T0 + 5 * M)
    assert ledger.outbox.due(now=T0 + 4 * M) == []
    [retry] = ledger.outbox.due(now=T0 + 5 * M)
    assert (retry.state, retry.last_error, retry.owner) == (OutboxState.PENDING, "421 later", None)

    assert claim_item(ledger, item.id, T0 + 5 * M, owner="b") is not None
    ledger.outbox.mark_sent(item.id, owner="b", now=T0 + 6 * M)
    assert ledger.outbox.due(now=T0 + 7 * M) == []
    sent = ledger.outbox.get(item.id)
    assert sent is not None
    assert (sent.state, sent.attempts, sent.sent_at) == (OutboxState.SENT, 2, T0 + 6 * M)
    assert sent.last_error == "421 later"  # the history stays readable
    assert claim_item(ledger, item.id, T0 + 7 * M) is None
    with pytest.raises(LedgerError, match="already sent"):
        ledger.outbox.mark_sent(item.id, owner="b")
    with pytest.raises(LedgerError, match="no outbox item 999"):
        ledger.outbox.mark_sent(999, owner="b")


def test_outbox_lease_of_a_crashed_sender_runs_out(ledger: Ledger) -> None:
    """A sending row is due again only after its lease; the old owner can no longer finish it."""
    enqueue(ledger)
    [item] = ledger.outbox.due(now=T0)
    assert claim_item(ledger, item.id, T0, owner="crashed") is not None
    assert ledger.outbox.due(now=T0 + 2 * M - timedelta(microseconds=1)) == []
    [again] = ledger.outbox.due(now=T0 + 2 * M)
    assert (again.state, again.owner) == (OutboxState.SENDING, "crashed")
    taken = claim_item(ledger, item.id, T0 + 2 * M, owner="b")
    assert taken is not None
    assert (taken.owner, taken.attempts) == ("b", 2)
    with pytest.raises(LedgerError, match="no longer ours: its lease ran out and b is sending"):
        ledger.outbox.mark_sent(item.id, owner="crashed")
    ledger.outbox.mark_sent(item.id, owner="b", now=T0 + 3 * M)


def test_outbox_records_recipients_per_transaction(ledger: Ledger) -> None:
    """Accepted and refused-for-good recipients are kept; only the rest remain to send."""
    enqueue(ledger)
    [item] = ledger.outbox.due(now=T0)
    assert item.remaining == ["oncall@example.com", "sre@example.com"]
    assert claim_item(ledger, item.id, T0) is not None
    ledger.outbox.record_recipients(item.id, owner="a", accepted=["oncall@example.com"], refused={})
    ledger.outbox.record_recipients(
        item.id, owner="a", accepted=[], refused={"sre@example.com": "550 5.1.1 no such user"}
    )
    with pytest.raises(LedgerError, match="no longer ours"):
        ledger.outbox.record_recipients(item.id, owner="b", accepted=["x@example.com"], refused={})
    done = ledger.outbox.get(item.id)
    assert done is not None
    assert done.accepted == ["oncall@example.com"]
    assert done.refused == {"sre@example.com": "550 5.1.1 no such user"}
    assert done.remaining == []


def test_outbox_failed_is_final(ledger: Ledger) -> None:
    """A permanent failure stops the retries and keeps the error."""
    enqueue(ledger)
    [item] = ledger.outbox.due(now=T0)
    claim_item(ledger, item.id, T0)
    ledger.outbox.mark_failed(item.id, owner="a", error="550 no such user")
    assert ledger.outbox.due(now=T0 + H) == []
    failed = ledger.outbox.get(item.id)
    assert failed is not None
    assert (failed.state, failed.last_error) == (OutboxState.FAILED, "550 no such user")


def test_outbox_expire(ledger: Ledger) -> None:
    """Unsent items past expires_at are expired and returned; sent and live-leased ones are not."""
    enqueue(ledger, "p1")
    enqueue(ledger, "p2")
    enqueue(ledger, "p3")
    enqueue(ledger, "p4")
    p1, p2, p3, p4 = ledger.outbox.due(now=T0)
    claim_item(ledger, p2.id, T0)  # then crashed: its lease ran out long ago
    claim_item(ledger, p3.id, T0)
    ledger.outbox.mark_sent(p3.id, owner="a")
    assert ledger.outbox.claim(p4.id, owner="live", now=T0 + 12 * H - M, lease_until=T0 + 14 * H)
    assert ledger.outbox.expire(now=T0 + 11 * H) == []
    assert ledger.outbox.due(now=T0 + 12 * H) == []  # past expiry: never sent late
    expired = ledger.outbox.expire(now=T0 + 12 * H)
    assert [(i.id, i.state) for i in expired] == [
        (p1.id, OutboxState.EXPIRED),
        (p2.id, OutboxState.EXPIRED),
    ]
    assert ledger.outbox.expire(now=T0 + 13 * H) == [], "the live sender finishes p4 itself"
    sent = ledger.outbox.get(p3.id)
    assert sent is not None
    assert sent.state is OutboxState.SENT


def test_outbox_last_period(ledger: Ledger) -> None:
    """The latest period by instant, across DST offsets, per digest."""
    assert ledger.outbox.last_period("daily") is None
    enqueue(ledger, "2026-10-26T08:00+00:00")
    enqueue(ledger, "2026-10-23T08:00+01:00")
    enqueue(ledger, "2026-10-26T07:30+01:00")  # earlier instant, larger text than 2026-10-26T07:...
    enqueue(ledger, "2027-01-01T00:00+00:00", digest="weekly")
    assert ledger.outbox.last_period("daily") == "2026-10-26T08:00+00:00"
    assert ledger.outbox.last_period("weekly") == "2027-01-01T00:00+00:00"


# -- the one-daemon lock --------------------------------------------------------


def test_acquire_lock_refuses_a_second_ledger_in_process(db_path: Path) -> None:
    """A second Ledger on the same path gets LedgerLocked naming the path and our PID."""
    first = Ledger(db_path)
    first.acquire_lock()
    first.acquire_lock()  # idempotent for the holder
    with Ledger(db_path) as second:
        with pytest.raises(LedgerLocked) as caught:
            second.acquire_lock()
        assert str(db_path) in str(caught.value)
        assert f"PID {os.getpid()}" in str(caught.value)
        assert caught.value.pid == os.getpid()
        assert caught.value.exit_code == 75
        assert isinstance(caught.value, AutomationsError)
        first.close()
        second.acquire_lock()  # free after close()


SUBPROCESS_LOCK = """
import sys
from automations.errors import LedgerLocked
from automations.ledger import Ledger
with Ledger(sys.argv[1]) as ledger:
    try:
        ledger.acquire_lock()
    except LedgerLocked as exc:
        print(exc)
        sys.exit(exc.exit_code)
    print("locked", flush=True)
    sys.stdin.readline()
"""


def test_acquire_lock_refuses_another_process(db_path: Path) -> None:
    """Another process gets LedgerLocked (exit 75) naming the path and the holder's PID."""
    holder = Ledger(db_path)
    holder.acquire_lock()
    command = [sys.executable, "-c", SUBPROCESS_LOCK, str(db_path)]
    refused = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=30)
    assert refused.returncode == 75, refused.stderr
    assert str(db_path) in refused.stdout
    assert f"PID {os.getpid()}" in refused.stdout
    holder.close()
    allowed = subprocess.run(
        command, cwd=REPO, input="\n", capture_output=True, text=True, timeout=30
    )
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.strip() == "locked"


def test_acquire_lock_names_a_holder_in_another_process(db_path: Path) -> None:
    """While another process holds the lock, we are refused with its PID; then it is free."""
    command = [sys.executable, "-c", SUBPROCESS_LOCK, str(db_path)]
    with subprocess.Popen(
        command, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        assert child.stdin is not None
        assert child.stdout.readline().strip() == "locked"
        with Ledger(db_path) as ledger:
            with pytest.raises(LedgerLocked, match=f"PID {child.pid}"):
                ledger.acquire_lock()
            child.stdin.write("\n")
            child.stdin.flush()
            assert child.wait(timeout=30) == 0
            ledger.acquire_lock()


# -- opening ----------------------------------------------------------------


def test_wal_and_busy_timeout_are_set(db_path: Path) -> None:
    """The file is in WAL mode and the busy timeout is the one asked for."""
    with Ledger(db_path, busy_timeout=2.5):
        pass
    with Ledger.open(db_path) as ledger:
        assert ledger.database.rows("PRAGMA journal_mode")[0] == {"journal_mode": "wal"}
        assert ledger.database.rows("PRAGMA busy_timeout")[0] == {"timeout": 5000}
    with Ledger(db_path, busy_timeout=2.5) as ledger:
        assert ledger.database.rows("PRAGMA busy_timeout")[0] == {"timeout": 2500}


def test_busy_database_gives_ledger_error(db_path: Path) -> None:
    """A writer that holds the file past the busy timeout is a LedgerError naming the task."""
    with Ledger(db_path, busy_timeout=0.05) as ledger:
        other = sqlite3.connect(db_path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(LedgerError, match=r"claiming event .* failed in ledger .*locked"):
                claim(ledger)
        finally:
            other.close()
        assert claim(ledger)  # and works again once the other writer is gone


def test_corrupt_file_gives_ledger_error(db_path: Path) -> None:
    """Garbage in the database file is a LedgerError naming the path, not a raw sqlite3 error."""
    db_path.write_bytes(b"this is not a database, just garbage bytes " * 200)
    with pytest.raises(LedgerError, match=f"cannot open ledger {db_path}") as caught:
        Ledger(db_path)
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


def test_closed_ledger_gives_ledger_error(ledger_target: LedgerTarget) -> None:
    """Using a closed ledger is a LedgerError; closing twice is fine."""
    ledger = Ledger(ledger_target)
    ledger.close()
    ledger.close()
    with pytest.raises(LedgerError, match="closed"):
        claim(ledger)


def test_reopening_applies_no_migration_twice(ledger_target: LedgerTarget) -> None:
    """Open, close, open again: each migration is recorded exactly once."""
    with Ledger(ledger_target) as ledger:
        assert ledger.applied_migrations() == ALL_MIGRATIONS
        claim(ledger)
    with Ledger(ledger_target) as ledger:
        assert ledger.applied_migrations() == ALL_MIGRATIONS
        assert ledger.events.get(KEY) is not None
        table = "_migrations" if ledger.engine == "postgresql" else "_sqlite_migrations"
        rows = raw_rows(ledger, f"SELECT migration_set, name FROM {table} ORDER BY id")
    assert rows == [{"migration_set": MIGRATION_SET, "name": name} for name in ALL_MIGRATIONS]


def test_an_older_ledger_gets_newer_migrations_on_open(ledger_target: LedgerTarget) -> None:
    """A ledger made by an older version (no outbox yet) gains only the missing migrations."""
    with older_ledger(ledger_target, "0005_outbox") as execute:
        execute(
            "INSERT INTO events (rule, incident_id, incident_reference, event_key, state, reason,"
            " claimed_at) VALUES ('r', 'i', 'INC-1', 'r/i/0', 'applied', 'old', ?)",
            [T0.isoformat(timespec="microseconds")],
        )
    with Ledger(ledger_target) as ledger:
        assert ledger.applied_migrations() == ALL_MIGRATIONS
        assert enqueue(ledger)
        old = ledger.events.get("r/i/0")
        assert old is not None
        assert old.state is EventState.APPLIED


def test_memory_ledger_works_without_a_lock_file(tmp_path: Path) -> None:
    """ ":memory:" is allowed for tests: migrations apply and the lock is a no-op."""
    with Ledger(":memory:") as ledger:
        ledger.acquire_lock()
        assert ledger.applied_migrations() == ALL_MIGRATIONS
        assert claim(ledger)
        assert not claim(ledger)
