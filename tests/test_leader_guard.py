"""The guard before each effect: a replica that lost (or never had) the leader lock edits,
mails and notifies nothing, and leaves the work to the leader (real PostgreSQL lock, the
sandbox, a real SMTP server)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from automations.daemon import Daemon
from automations.leadership import Leadership
from automations.ledger import Ledger, NotificationState, OutboxState
from automations.ledger.owners import Owner
from tests.digest_support import Clock as DigestClock
from tests.digest_support import SMTPServer, open_digests, write_config
from tests.engine_harness import Harness
from tests.leader_support import terminate_lock_session
from tests.notify_support import PUBLIC, Clock, RecordingSender, apply, outbox
from tests.sandbox_server import SandboxControl
from tests.test_digest_delivery import T0, add
from tests.test_digest_outbox_lease import KEY, PERIOD

H = timedelta(hours=1)
OLD = Owner("host-old", 11, "old0")
NEW = Owner("host-new", 22, "new0")
ESCALATE_MINOR = """
[[rules]]
name = "escalate-minor"
type = "escalate_severity"
every = "1m"
where = { status_category = ["live"], severity = ["Minor"] }
steps = [ { after = "2h", to = "Major" } ]
"""


@pytest.fixture
def leaders(postgres_url: str) -> Iterator[tuple[Leadership, Leadership]]:
    """The old leader (holding the lock) and the replica that will take over."""
    old, new = Leadership(postgres_url, owner=OLD), Leadership(postgres_url, owner=NEW)
    assert old.try_acquire()
    try:
        yield old, new
    finally:
        old.release()
        new.release()


def test_a_leader_whose_session_ended_edits_nothing_and_frees_the_claim(
    harness: Harness, postgres_url: str, leaders: tuple[Leadership, Leadership]
) -> None:
    """Lock session terminated: claim and re-read happen, the edit does not; the key is free
    again, and the new leader applies it once."""
    old, new = leaders
    harness.write(ESCALATE_MINOR)
    stuck = harness.add("Stuck", age=3 * H)
    runtime = harness.runtime()
    try:
        runtime.engine.may_act = old.may_act
        assert terminate_lock_session(postgres_url, OLD) == 1
        report = runtime.engine.run_cycle(runtime.rules, "every 1m")
        key = report.rules[0].planned[0].event_key
        freed = runtime.ledger.events.done_keys([key])
        assert new.try_acquire()
        runtime.engine.may_act = new.may_act
        after = runtime.engine.run_cycle(runtime.rules, "every 1m")
    finally:
        runtime.close()
    rereads = [
        r
        for r in harness.sandbox.requests()
        if r["method"] == "GET" and r["path"] == f"/v2/incidents/{stuck['id']}"
    ]
    assert report.lost_leadership is not None
    assert report.lost_leadership.startswith("the lock's connection failed")
    assert "stopped early: no longer the leader (the lock's connection failed" in report.line()
    assert report.applied == 0
    assert freed == set()
    assert len(rereads) == 2  # the guard came after the old leader's re-read, before the edit
    assert after.applied == 1
    assert len(harness.posts()) == 1
    assert harness.severity(stuck["id"]) == "Major"


def test_a_standby_leaves_queued_notifications_to_the_leader(
    tmp_path: Path, leaders: tuple[Leadership, Leadership]
) -> None:
    """The outbox asks before claiming a row: a standby sends none and leaves each row queued,
    claimable by the leader at once."""
    old, standby = leaders
    ledger = Ledger(tmp_path / "ledger.db")
    try:
        apply(ledger, "escalate-minor/01INCIDENT0001/step-0", ["hook"], {"hook": PUBLIC})
        sender = RecordingSender()
        box = outbox(ledger, {"hook": sender}, {"hook": PUBLIC}, Clock())
        box.may_act = standby.may_act
        nothing = box.deliver_due()
        [row] = ledger.notifications.history()
        box.may_act = old.may_act
        [sent] = box.deliver_due()
    finally:
        ledger.close()
    assert nothing == []
    assert (row.state, row.attempts, row.owner) == (NotificationState.QUEUED, 0, None)
    assert sent.outcome == "sent"
    assert sender.keys == ["escalate-minor/01INCIDENT0001/step-0"]


def test_a_standby_sends_no_digest(
    sandbox: SandboxControl,
    smtp: SMTPServer,
    tmp_path: Path,
    leaders: tuple[Leadership, Leadership],
) -> None:
    """The digest outbox asks before claiming: a standby mails nothing, the leader mails once."""
    old, standby = leaders
    sandbox.reset(incidents=0, now=T0)
    add(sandbox, "Checkout latency", age=timedelta(hours=1))
    runtime, digests = open_digests(
        write_config(tmp_path, sandbox.base_url, smtp.port), DigestClock(T0)
    )
    try:
        assert digests.enqueue("daily", PERIOD)
        digests.outbox.may_act = standby.may_act
        nothing = digests.outbox.deliver_due()
        waiting = runtime.ledger.outbox.find("daily", KEY)
        digests.outbox.may_act = old.may_act
        [sent] = digests.outbox.deliver_due()
    finally:
        runtime.close()
    assert nothing == []
    assert waiting is not None
    assert (waiting.state, waiting.attempts) == (OutboxState.PENDING, 0)
    assert sent.outcome == OutboxState.SENT
    assert len(smtp.received) == 1


def test_two_engines_racing_on_one_postgres_ledger_apply_each_action_once(
    harness: Harness, postgres_url: str
) -> None:
    """A split brain: two processes act at once with no leader lock; the claims, unique in
    PostgreSQL, let each due action be edited exactly once."""
    harness.store_url = postgres_url
    harness.write(ESCALATE_MINOR)
    due = [harness.add(f"Stuck {n}", age=3 * H)["id"] for n in range(6)]
    harness.sandbox.set_faults(latency_seconds=0.1)  # six actions take the first racer ~2 s
    command = [sys.executable, "-m", "tests.race_engine", str(harness.config_path)]
    with contextlib.ExitStack() as stack:  # each racer's pipes closed, whatever happens
        racers = [
            stack.enter_context(
                subprocess.Popen(
                    command,
                    env=harness.env(),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
            for _ in range(2)
        ]
        for racer in racers:  # both have built their runtimes: then both start at once
            assert racer.stdout is not None
            assert racer.stdout.readline() == "ready\n", racer.communicate(timeout=60)
        for racer in racers:
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        outputs = [racer.communicate(timeout=120) for racer in racers]
    harness.outputs += [text for pair in outputs for text in pair]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    edits = Counter(post["path"].split("/")[3] for post in harness.posts())
    assert edits == dict.fromkeys(due, 1)
    assert sum(r["applied"] for r in results) == len(due)
    assert sum(r["already_done"] for r in results) > 0  # they met: a claim was refused
    assert all(r["failed"] == 0 for r in results), outputs
    assert all(harness.severity(incident) == "Major" for incident in due)


def test_once_on_postgres_acts_when_no_one_leads_and_exits_75_beside_a_leader(
    harness: Harness, postgres_url: str
) -> None:
    """`once` takes the free leader lock and edits; while a daemon leads it exits 75, saying
    the leader is running, and touches nothing."""
    harness.store_url = postgres_url
    harness.write(ESCALATE_MINOR)
    first = harness.add("Stuck", age=3 * H)
    alone = harness.cli("once")
    second = harness.add("Stuck too", age=3 * H)
    leader = Leadership(postgres_url, owner=OLD)
    assert leader.try_acquire()
    try:
        beside = harness.cli("once")
    finally:
        leader.release()
    assert alone.returncode == 0, alone.stderr
    assert harness.severity(first["id"]) == "Major"
    assert beside.returncode == 75
    assert beside.stderr.startswith("error: the leader is running (PID 11 on host-old holds")
    assert harness.severity(second["id"]) == "Minor"
    assert len(harness.posts()) == 1


def test_a_standby_leaves_webhook_runs_to_the_leader(
    harness: Harness, leaders: tuple[Leadership, Leadership], postgres_url: str
) -> None:
    """Webhook deliveries a standby receives wait in the ledger (its evaluation refuses);
    once it leads, the same evaluation edits the incident."""
    old, _ = leaders
    harness.store_url = postgres_url
    harness.write(ESCALATE_MINOR)
    stuck = harness.add("Stuck", age=3 * H)["id"]
    runtime = harness.runtime()
    try:
        standby = Leadership(postgres_url, owner=Owner("host-c", 3, "c"))
        daemon = Daemon(runtime, leadership=standby, retry_every=0)
        assert daemon.election is not None
        assert daemon.election.retry_every == 0
        daemon.election.step()
        as_standby = daemon.evaluate_incidents({stuck: False}, "webhook")
        old.release()
        daemon.election.step()
        as_leader = daemon.evaluate_incidents({stuck: False}, "webhook")
        daemon.election.stop()
    finally:
        runtime.close()
    assert as_standby is None
    assert daemon.election.changes == 1
    assert as_leader is not None
    assert as_leader.report.applied == 1
    assert len(harness.posts()) == 1
