"""An edit POST is sent at most once per claim: a lost or failed answer is settled by reconcile.

The sandbox applies an edit and drops its answer, or answers 503 while a
human changes the incident; the engine must neither repeat a landed edit
(the channel would be told twice) nor resend a stale one over the human.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import stamina

from automations.daemon import run_once
from automations.errors import SimulatedCrash
from automations.failpoints import Failpoints
from automations.ledger import EventState, Ledger
from tests.engine_harness import Harness

H = timedelta(hours=1)

ESCALATE_MINOR = """
[[rules]]
name = "escalate-minor"
type = "escalate_severity"
every = "1m"
where = { status_category = ["live"], severity = ["Minor"] }
steps = [ { after = "2h", to = "Major" } ]
notify_incident_channel = true
"""


def _edit_path(incident_id: str) -> str:
    return f"/v2/incidents/{incident_id}/actions/edit"


def test_a_lost_answer_to_a_landed_edit_is_reconciled_not_resent(harness: Harness) -> None:
    """The edit lands, its answer is dropped: one POST, the event ends reconciled."""
    harness.write(ESCALATE_MINOR)
    stuck = harness.add("Stuck", age=3 * H)
    harness.sandbox.set_faults(
        next=[{"kind": "drop", "when": "after"}], paths=[_edit_path(stuck["id"])]
    )
    runtime = harness.runtime()
    try:
        (lost,) = run_once(runtime)
        (settled,) = run_once(runtime)
    finally:
        runtime.close()

    posts = harness.posts()
    assert [post["fault"] for post in posts] == ["drop"]
    assert [post["body"]["notify_incident_channel"] for post in posts] == [True]
    assert harness.severity(stuck["id"]) == "Major"
    assert lost.failed == 1
    assert lost.unreachable
    assert settled.ok, settled.line()
    assert settled.applied == 0
    with Ledger(harness.ledger_path) as ledger:
        (event,) = ledger.events.history()
    assert event.state is EventState.RECONCILED


def test_a_human_raising_the_severity_while_the_edit_fails_is_not_overridden(
    harness: Harness,
) -> None:
    """The edit gets 503s; a human raises to Critical meanwhile: no second POST lowers it."""
    harness.write(ESCALATE_MINOR)
    stuck = harness.add("Stuck", age=3 * H)
    failing = [{"kind": "status", "status": 503}] * 5
    harness.sandbox.set_faults(next=failing, paths=[_edit_path(stuck["id"])])
    runtime = harness.runtime()
    reports = []
    try:
        cycle = threading.Thread(target=lambda: reports.extend(run_once(runtime)))
        cycle.start()
        # The human acts as soon as the first POST has failed: during the backoff, if any.
        deadline = time.monotonic() + 10
        while not harness.posts() and time.monotonic() < deadline:
            time.sleep(0.005)
        harness.sandbox.update_incident(stuck["id"], severity="Critical")
        harness.sandbox.clear_faults()
        cycle.join(30)
        assert not cycle.is_alive()
        (later,) = run_once(runtime)
    finally:
        runtime.close()

    assert [post["status"] for post in harness.posts()] == [503]
    assert harness.severity(stuck["id"]) == "Critical"
    (failed,) = reports
    assert failed.failed == 1
    assert later.ok, later.line()
    assert later.planned == 0
    with Ledger(harness.ledger_path) as ledger:
        assert ledger.events.history() == []  # released: the edit never landed, nothing is due now


def test_a_rate_limited_edit_is_sent_again_only_after_a_fresh_re_read(harness: Harness) -> None:
    """A 429 on the edit: not resent at once; the next cycle re-reads, re-checks, sends once."""
    harness.write(ESCALATE_MINOR)
    stuck = harness.add("Stuck", age=3 * H)
    harness.sandbox.set_faults(
        next=[{"kind": "rate_limit", "retry_after": 0}], paths=[_edit_path(stuck["id"])]
    )
    runtime = harness.runtime()
    try:
        (limited,) = run_once(runtime)
        harness.sandbox.clear_requests()
        (again,) = run_once(runtime)
    finally:
        runtime.close()

    assert limited.failed == 1
    assert again.applied == 1, again.line()
    calls = [(r["method"], r["path"], r["status"]) for r in harness.sandbox.requests()]
    reread = ("GET", f"/v2/incidents/{stuck['id']}", 200)
    resend = ("POST", _edit_path(stuck["id"]), 200)
    assert calls.count(resend) == 1
    assert reread in calls[: calls.index(resend)]
    assert harness.severity(stuck["id"]) == "Major"


def test_a_claim_is_not_settled_while_the_incident_updates_cannot_be_read(
    harness: Harness,
) -> None:
    """After a crash, a human undid the edit; with updates unreadable the claim waits."""
    harness.write(ESCALATE_MINOR)
    stuck = harness.add("Stuck", age=3 * H)
    points = Failpoints()
    points.arm("after_edit")
    runtime = harness.runtime(failpoints=points)
    try:
        with pytest.raises(SimulatedCrash):
            run_once(runtime)
    finally:
        runtime.close()
    harness.sandbox.update_incident(stuck["id"], severity="Minor")  # a human undoes it
    harness.sandbox.set_faults(
        next=[{"kind": "status", "status": 503}] * 3, paths=["/v2/incident_updates"]
    )
    runtime = harness.runtime()
    try:
        with stamina.set_testing(True, attempts=3, cap=True):  # the 3 attempts, no backoff
            (unreadable,) = run_once(runtime)
        harness.sandbox.clear_faults()
        (settled,) = run_once(runtime)
    finally:
        runtime.close()

    assert unreadable.unreachable
    assert settled.ok, settled.line()
    assert len(harness.posts()) == 1  # never re-applied over the human
    assert harness.severity(stuck["id"]) == "Minor"
    with Ledger(harness.ledger_path) as ledger:
        (event,) = ledger.events.history()
    assert event.state is EventState.RECONCILED
