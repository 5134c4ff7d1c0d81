"""Nothing is lost silently: failed is failed, `retry` re-arms it, an unreachable API ends the
cycle at once, and `adopt` starts on a real organisation without acting on its backlog."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

from automations.ledger import EventState, Ledger
from automations.recovery import adopt, never_run_hints
from tests.engine_harness import Harness
from tests.test_engine_sandbox import ESCALATE

H = timedelta(hours=1)


def _refuse(harness: Harness, path: str, status: int) -> None:
    """Every request to ``path`` (a prefix) answers ``status`` until the faults are cleared."""
    harness.sandbox.set_faults(paths=[path], error_rate=1.0, error_status=status)


def _event(harness: Harness) -> Any:
    with Ledger(harness.ledger_path) as ledger:
        (event,) = ledger.events.history()
    return event


# -- 1. a refused action is failed, never skipped ----------------------------------------


def test_a_refused_reread_is_failed_and_once_exits_1(harness: Harness) -> None:
    """A 404 on the re-read before the edit records `failed` (not `skipped`); `once` exits 1."""
    harness.write(ESCALATE)
    stuck = harness.add("Stuck", age=3 * H)
    _refuse(harness, f"/v2/incidents/{stuck['id']}", 404)

    result = harness.cli("once")

    assert result.returncode == 1, result.stderr
    assert "1 failed" in result.stderr
    event = _event(harness)
    assert event.state is EventState.FAILED
    assert "cannot re-read the incident" in (event.error or "")
    assert "404" in (event.error or "")
    assert harness.posts() == []


def test_a_refused_read_when_settling_a_crash_is_failed_and_once_exits_1(
    harness: Harness,
) -> None:
    """A claim left by a crash whose incident can no longer be read is `failed`, exit 1."""
    harness.write(ESCALATE)
    stuck = harness.add("Stuck", age=3 * H)
    crashed = harness.cli("once", AUTOMATIONS_FAILPOINTS="after_claim")
    _refuse(harness, f"/v2/incidents/{stuck['id']}", 403)

    result = harness.cli("once")

    assert crashed.returncode == 137
    assert result.returncode == 1, result.stderr
    event = _event(harness)
    assert event.state is EventState.FAILED
    assert "reconcile: cannot re-read the incident" in (event.error or "")
    assert harness.posts() == []


def test_a_refused_edit_is_failed_and_counts_in_the_report(harness: Harness) -> None:
    """A 403 on the edit records `failed` with the API's error, and the cycle is not ok."""
    harness.write(ESCALATE)
    stuck = harness.add("Stuck", age=3 * H)
    _refuse(harness, f"/v2/incidents/{stuck['id']}/actions/edit", 403)

    (report,) = harness.cycle()

    assert not report.ok
    assert report.failed == 1
    assert report.skipped == 0
    event = _event(harness)
    assert event.state is EventState.FAILED
    assert "403" in (event.error or "")


# -- 3. retry re-arms, the next cycle re-checks, still exactly once -----------------------


def test_retry_end_to_end_refused_then_rearmed_then_applied_once(harness: Harness) -> None:
    """Edit refused -> once exits 1, history shows failed -> retry -> fault cleared -> once
    applies it (same event key) -> a second once does nothing."""
    harness.write(ESCALATE)
    stuck = harness.add("Checkout latency", age=3 * H)
    _refuse(harness, f"/v2/incidents/{stuck['id']}/actions/edit", 422)

    refused = harness.cli("once")
    failed = json.loads(harness.cli("history", "--state", "failed", "--json").stdout)
    untouched = harness.cli("once")  # failed stays failed: never retried blindly
    retried = harness.cli("retry", "--rule", "escalate-minor")
    harness.sandbox.clear_faults()
    applied = harness.cli("once")
    again = harness.cli("once")
    rows = json.loads(harness.cli("history", "--json").stdout)

    assert refused.returncode == 1, refused.stderr
    assert [(r["incident_reference"], r["state"]) for r in failed] == [
        (stuck["reference"], "failed")
    ]
    assert "422" in failed[0]["error"]
    assert untouched.returncode == 0, untouched.stderr
    assert retried.returncode == 0, retried.stderr
    assert f"re-armed {stuck['reference']} 'Checkout latency'" in retried.stdout
    assert "1 failed action(s) re-armed" in retried.stdout
    assert applied.returncode == 0, applied.stderr
    assert "1 applied" in applied.stderr
    assert again.returncode == 0, again.stderr
    assert "0 applied" in again.stderr
    assert harness.severity(stuck["id"]) == "Major"
    posts = harness.posts()
    assert len(posts) == 2  # the refused one, then the one that landed
    assert [p["status"] for p in posts] == [422, 200]
    (row,) = rows
    assert row["event_key"] == failed[0]["event_key"]
    assert (row["state"], row["rearmed"], row["attempts"]) == ("applied", 1, 2)
    rearmed_at = datetime.fromisoformat(row["rearmed_at"])
    assert abs(rearmed_at - harness.sandbox.now()) < timedelta(minutes=1), "the API's time"
    assert row["error"] is None


def test_retry_does_not_send_blindly_when_the_rule_no_longer_wants_it(harness: Harness) -> None:
    """A re-armed action whose incident a human already fixed is not sent; the key stays armed."""
    harness.write(ESCALATE)
    stuck = harness.add("Stuck", age=3 * H)
    _refuse(harness, f"/v2/incidents/{stuck['id']}/actions/edit", 403)
    harness.cycle()
    harness.sandbox.clear_faults()
    harness.sandbox.update_incident(stuck["id"], severity="Critical")  # a human got there

    with Ledger(harness.ledger_path) as ledger:
        (rearmed,) = ledger.events.rearm_failed(incident=stuck["reference"])
    (report,) = harness.cycle()

    assert rearmed.state is EventState.REARMED
    assert report.ok
    assert report.applied == 0
    assert len(harness.posts()) == 1  # only the refused attempt
    assert _event(harness).state is EventState.REARMED


def test_retry_filters_by_rule_incident_and_age(harness: Harness) -> None:
    """retry re-arms only failed events matching --rule, --incident and --since; others stay."""
    harness.write(ESCALATE + ESCALATE.replace("escalate-minor", "other"))
    first = harness.add("First", age=3 * H)
    second = harness.add("Second", age=3 * H)
    harness.sandbox.set_faults(paths=["/v2/incidents/"], error_rate=1.0, error_status=403)
    harness.cycle()
    harness.sandbox.clear_faults()
    with Ledger(harness.ledger_path) as ledger:
        assert {e.state for e in ledger.events.history()} == {EventState.FAILED}
        now = max(e.claimed_at for e in ledger.events.history())
        by_age = ledger.events.rearm_failed(since=now + timedelta(seconds=1), now=now)
        by_rule_and_incident = ledger.events.rearm_failed(rule="other", incident=first["reference"])
        states = {(e.rule, e.incident_reference): e.state for e in ledger.events.history()}

    assert by_age == []
    assert [(e.rule, e.incident_reference) for e in by_rule_and_incident] == [
        ("other", first["reference"])
    ]
    assert states == {
        ("other", first["reference"]): EventState.REARMED,
        ("other", second["reference"]): EventState.FAILED,
        ("escalate-minor", first["reference"]): EventState.FAILED,
        ("escalate-minor", second["reference"]): EventState.FAILED,
    }


def test_retry_rejects_an_unknown_rule_and_says_when_nothing_failed(harness: Harness) -> None:
    """retry --rule nope exits 78 naming the rules; with nothing failed it says so and exits 0."""
    harness.write(ESCALATE)
    harness.cli("once")

    unknown = harness.cli("retry", "--rule", "nope")
    nothing = harness.cli("retry")

    assert unknown.returncode == 78
    assert "no rule named 'nope'; rules: escalate-minor" in unknown.stderr
    assert nothing.returncode == 0, nothing.stderr
    assert "nothing to retry" in nothing.stdout


# -- 4. an unreachable API ends the cycle at its first unreachable answer -----------------

TWO_SCHEDULES = ESCALATE + ESCALATE.replace("escalate-minor", "every-5m").replace('"1m"', '"5m"')


def test_once_gives_up_at_the_first_unreachable_answer(harness: Harness) -> None:
    """Every request after the poll dropped: once ends after one re-read (with its retries),
    sends no edit, skips the other schedule, exits 1, and leaves nothing claimed."""
    harness.write(TWO_SCHEDULES)
    ids = [harness.add(f"Stuck {n}", age=3 * H)["id"] for n in range(8)]
    harness.sandbox.set_faults(paths=["/v2/incidents/"], drop_rate=1.0)
    harness.sandbox.clear_requests()

    started = time.monotonic()
    result = harness.cli("once")
    elapsed = time.monotonic() - started

    requests = harness.sandbox.requests()
    polls = [r for r in requests if r["path"] == "/v2/incidents"]
    rereads = [
        r for r in requests if r["method"] == "GET" and r["path"].startswith("/v2/incidents/")
    ]
    assert result.returncode == 1, result.stderr
    assert "gave up the cycle, the API is unreachable" in result.stderr
    assert "not running every 5m this time" in result.stderr
    assert len(polls) == 1, "the second schedule did not poll"
    assert len({r["path"] for r in rereads}) == 1, "one incident re-read, not eight"
    assert len(rereads) == 3, "one call: retry_attempts = 3"
    assert harness.posts() == []
    # Eight re-reads at >= 1.5 s of backoff each would take 12 s; one takes at most 3.5 s.
    assert elapsed < 9, f"once took {elapsed:.1f}s"
    with Ledger(harness.ledger_path) as ledger:
        assert ledger.events.history() == [], "the claim that was not sent was released"
    assert {harness.severity(i) for i in ids} == {"Minor"}


def test_after_giving_up_the_next_cycle_acts_normally(harness: Harness) -> None:
    """The daemon keeps its engine: after a cycle that gave up, the next one applies everything."""
    harness.write(ESCALATE)
    ids = [harness.add(f"Stuck {n}", age=3 * H)["id"] for n in range(3)]
    runtime = harness.runtime()
    try:
        harness.sandbox.set_faults(paths=["/v2/incidents/"], drop_rate=1.0)
        first = runtime.engine.run_cycle(runtime.rules, "every 1m")
        harness.sandbox.clear_faults()
        second = runtime.engine.run_cycle(runtime.rules, "every 1m")
    finally:
        runtime.close()

    assert first.unreachable
    assert not first.ok
    assert first.failed == 1
    assert second.ok, second.line()
    assert second.applied == 3
    assert {harness.severity(i) for i in ids} == {"Major"}
    assert len(harness.posts()) == 3


# -- 6. adopt: start on a real organisation without acting on its backlog -----------------


def test_adopt_end_to_end_only_later_incidents_are_acted_on(harness: Harness) -> None:
    """plan names the never-run rule's backlog and suggests adopt; adopt records it as
    skipped "baseline"; once then edits nothing, and later only the newly due incident."""
    harness.write(ESCALATE)
    backlog = [harness.add(f"Old {n}", age=3 * H)["id"] for n in range(3)]

    plan = harness.cli("plan")
    adopted = harness.cli("adopt")
    quiet = harness.cli("once")
    skipped = json.loads(harness.cli("history", "--state", "skipped", "--json").stdout)
    replan = harness.cli("plan")
    fresh = harness.add("New", age=1 * H)
    harness.sandbox.advance_clock(2 * 3600)
    later = harness.cli("once")

    assert plan.returncode == 0, plan.stderr
    assert (
        "rule escalate-minor has never run on this ledger and has a backlog: 3 actions due now"
        in plan.stderr
    )
    assert "automations adopt --rule escalate-minor" in plan.stderr
    assert adopted.returncode == 0, adopted.stderr
    assert "escalate-minor: 3 actions due now recorded as skipped (baseline)" in adopted.stdout
    assert quiet.returncode == 0, quiet.stderr
    assert "0 applied" in quiet.stderr
    assert sorted(r["incident_id"] for r in skipped) == sorted(backlog)
    assert all(r["reason"].startswith("baseline: due when adopted (") for r in skipped)
    assert "never run" not in replan.stderr
    assert "nothing to do" in replan.stdout
    assert later.returncode == 0, later.stderr
    assert "1 applied" in later.stderr
    assert [p["path"].split("/")[3] for p in harness.posts()] == [fresh["id"]]
    assert {harness.severity(i) for i in backlog} == {"Minor"}


def test_adopt_records_the_whole_backlog_for_one_rule_without_the_brake(
    harness: Harness,
) -> None:
    """adopt --rule takes every due action (past max_actions_per_cycle) for that rule only."""
    harness.write(ESCALATE + ESCALATE.replace("escalate-minor", "other"))
    for n in range(12):
        harness.add(f"Old {n}", age=3 * H)
    runtime = harness.runtime()
    try:
        rules = [r for r in runtime.rules if r.name == "escalate-minor"]
        (result,) = adopt(runtime.engine, rules)
        again = adopt(runtime.engine, rules)
        with Ledger(harness.ledger_path) as ledger:
            by_rule = {e.rule for e in ledger.events.history()}
            count = len(ledger.events.history(states=[EventState.SKIPPED]))
    finally:
        runtime.close()

    assert (result.recorded, result.already, result.failure) == (12, 0, None)
    assert [(r.recorded, r.already) for r in again] == [(0, 12)]
    assert by_rule == {"escalate-minor"}
    assert count == 12
    assert harness.posts() == []


def test_never_run_means_no_event_and_no_finished_cycle(harness: Harness) -> None:
    """A rule that ran (even finding nothing) gets no hint; a new one, or one whose only cycle
    failed before evaluating, does when it has a backlog."""
    harness.write(ESCALATE)
    runtime = harness.runtime()
    try:
        runtime.engine.run_cycle(runtime.rules, "every 1m")  # nothing due: no events
    finally:
        runtime.close()
    harness.add("Old", age=3 * H)
    harness.write(ESCALATE + ESCALATE.replace("escalate-minor", "added-later"))
    runtime = harness.runtime()
    try:
        (failing,) = [r for r in runtime.rules if r.name == "added-later"]
        _refuse(harness, "/v2/incidents", 403)  # refused: no retries to wait for
        broken = runtime.engine.run_cycle([failing], "every 1m")
        harness.sandbox.clear_faults()
        _, report = runtime.engine.plan(runtime.rules)
        hints = never_run_hints(runtime.ledger, report)
    finally:
        runtime.close()

    assert broken.error is not None
    assert [len(o.planned) for o in report.rules] == [1, 1]
    (hint,) = hints
    assert hint.startswith("rule added-later has never run on this ledger and has a backlog: 1")
