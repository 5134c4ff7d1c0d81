"""An edit POST is sent at most once per claim: a lost or failed answer is settled by reconcile.

The sandbox applies an edit and drops its answer, or answers 503 while a
human changes the incident; the engine must neither repeat a landed edit
(the channel would be told twice) nor resend a stale one over the human.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from automations.daemon import run_once
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
        (event,) = ledger.events()
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
        assert ledger.events() == []  # released: the edit never landed, nothing is due now
