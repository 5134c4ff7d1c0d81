"""Retention: rows older than [store] retention go, unless they still guard an action; on
both backends.

Times are relative to the sandbox's clock (API time), never a calendar date.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from automations.config import load_config
from automations.daemon import run_once
from automations.errors import ConfigError
from automations.ledger import Ledger, OutboxState, Pruned
from automations.reload import prepare_reload
from tests.engine_harness import Harness
from tests.ledger_backends import LedgerTarget
from tests.test_engine_sandbox import ESCALATE, MIRROR

D = timedelta(days=1)
H = timedelta(hours=1)


def applied(ledger: Ledger, incident_id: str, at: datetime, step: str = "severity-X") -> str:
    """An applied event of the escalate rule for this incident, claimed and finished ``at``."""
    key = f"escalate-minor/{incident_id}/{step}"
    ledger.events.claim(
        rule="escalate-minor",
        incident_id=incident_id,
        incident_reference="INC-0",
        event_key=key,
        reason="step 1",
        request_body=None,
        now=at,
    )
    ledger.events.mark_applied(key, request_id="r", now=at)
    return key


def incidents_with_events(path: LedgerTarget) -> set[str]:
    with Ledger(path) as ledger:
        return {event.incident_id for event in ledger.events.history()}


def test_events_go_only_for_incidents_closed_or_deleted_for_the_whole_period(
    store_harness: Harness,
) -> None:
    """Of five incidents with 450-day-old events, only the one closed and untouched since and
    the deleted one lose their events; open, recently updated and recently acted on ones
    keep theirs."""
    harness = store_harness
    harness.write(ESCALATE)
    now = harness.sandbox.now()
    old = now - 450 * D
    closed = harness.add("Closed long ago", age=500 * D, status="Closed", updated_at=old)
    live = harness.add("Still live", age=500 * D, updated_at=old)
    touched = harness.add("Closed, edited lately", age=500 * D, status="Closed")
    recent = harness.add("Closed, acted on lately", age=500 * D, status="Closed", updated_at=old)
    harness.sandbox.update_incident(touched["id"], summary="edited ten days ago")
    with harness.open_ledger() as ledger:
        for incident in (closed, live, touched, recent):
            applied(ledger, incident["id"], old)
        applied(ledger, "01DELETEDINCIDENT", old)
        applied(ledger, recent["id"], now - 10 * D, step="severity-Y")

    (report,) = harness.cycle()

    assert report.ok, report.line()
    assert incidents_with_events(harness.ledger_target) == {
        live["id"],
        touched["id"],
        recent["id"],
    }


def test_an_unconfirmed_event_keeps_the_incident_s_events(ledger_target: LedgerTarget) -> None:
    """A claim still in flight (planned) is never forgotten, nor are its incident's others."""
    now = datetime.fromisoformat("2030-06-01T00:00:00+00:00")  # pure SQL: any fixed instant
    old, cutoff = now - 450 * D, now - 400 * D
    with Ledger(ledger_target) as ledger:
        applied(ledger, "01FLIGHT", old)
        applied(ledger, "01DONE", old)
        ledger.events.claim(
            rule="escalate-minor",
            incident_id="01FLIGHT",
            incident_reference="INC-0",
            event_key="escalate-minor/01FLIGHT/severity-Z",
            reason="in flight",
            request_body=None,
            now=old,
        )
        candidates = ledger.retention.candidates(cutoff, checked_before=now, limit=10)
        removed = ledger.retention.forget_incident("01FLIGHT", cutoff)
        left = {event.incident_id for event in ledger.events.history()}
    assert candidates == ["01DONE"]
    assert removed == 0
    assert left == {"01FLIGHT", "01DONE"}


def test_a_rule_whose_query_returns_the_incident_keeps_its_events(store_harness: Harness) -> None:
    """A mirror over closed incidents could act on one again: its events stay."""
    harness = store_harness
    harness.write(MIRROR.replace('["live", "learning"]', '["live", "learning", "closed"]'))
    now = harness.sandbox.now()
    closed = harness.add("Closed long ago", age=500 * D, status="Closed", updated_at=now - 450 * D)
    harness.sandbox.update_incident(closed["id"], custom_fields={"Phase": "Closed"})
    harness.sandbox.update_incident(closed["id"], updated_at=(now - 450 * D).isoformat())
    with harness.open_ledger() as ledger:
        applied(ledger, closed["id"], now - 450 * D)

    harness.cycle()

    assert incidents_with_events(harness.ledger_target) == {closed["id"]}


def test_pruning_runs_at_most_hourly(store_harness: Harness) -> None:
    """A prune an hour after the last: an incident that becomes prunable in between waits."""
    harness = store_harness
    harness.write(ESCALATE)
    now = harness.sandbox.now()
    first = harness.add("First", age=500 * D, status="Closed", updated_at=now - 450 * D)
    second = harness.add("Second", age=500 * D, status="Closed", updated_at=now - 450 * D)
    with harness.open_ledger() as ledger:
        applied(ledger, first["id"], now - 450 * D)
    harness.cycle()
    with harness.open_ledger() as ledger:
        applied(ledger, second["id"], now - 450 * D)

    harness.sandbox.advance_clock(30 * 60)
    harness.cycle()
    assert incidents_with_events(harness.ledger_target) == {second["id"]}

    harness.sandbox.advance_clock(31 * 60)
    harness.cycle()
    assert incidents_with_events(harness.ledger_target) == set()


def test_old_runs_outbox_items_and_releases_go_but_what_is_read_stays(
    ledger_target: LedgerTarget,
) -> None:
    """Old runs go except each rule's and schedule's newest OK one; old finished outbox items
    go except each digest's newest; pending ones and running runs stay."""
    now = datetime.fromisoformat("2030-06-01T00:00:00+00:00")  # a fixed past/future: pure SQL
    old, cutoff = now - 450 * D, now - 400 * D
    with Ledger(ledger_target) as ledger:
        counts = dict.fromkeys(
            (
                "incidents_seen",
                "actions_planned",
                "actions_applied",
                "actions_failed",
                "actions_skipped",
                "api_requests",
            ),
            0,
        )
        runs = []
        for n, (schedule, rules, error) in enumerate(
            [
                ("every 1m", ["a", "b"], None),
                ("every 1m", ["a"], None),  # a's newest OK run
                ("every 1m", ["b"], "failed"),
                ("cron x", ["c"], None),  # c's and the cron schedule's newest OK run
            ]
        ):
            run = ledger.runs.start(schedule, rules=rules, now=old + n * H)
            ledger.runs.finish(run, **counts, error=error, now=old + n * H)
            runs.append(run)
        running = ledger.runs.start("every 1m", rules=["a"], now=old)
        for n in range(3):  # p0 and p1 (daily-0) sent below, p2 (daily-1) pending
            ledger.outbox.enqueue(
                digest=f"daily-{n // 2}",
                period=f"p{n}",
                subject="s",
                recipients=["a@example.com"],
                message=b"m",
                message_id=f"<{n}@x>",
                expires_at=old + D,
                now=old + n * H,
            )
        for item in ledger.outbox.due(now=old + 3 * H)[:2]:
            ledger.outbox.claim(item.id, owner="test", now=old + 3 * H, lease_until=old + 4 * H)
            ledger.outbox.mark_sent(item.id, owner="test", now=old)
        pruned = Pruned()
        ledger.retention.prune_history(cutoff, pruned)

        kept_runs = {run.id for run in ledger.runs.history(limit=100)}
        periods = {p for d in ("daily-0", "daily-1") for p, _ in ledger.outbox.periods(d)}
        states = dict(ledger.outbox.periods("daily-1"))

    # Run 0 was b's newest OK run (run 2 failed): kept too.
    assert kept_runs == {runs[0], runs[1], runs[3], running}
    assert pruned.runs == 1
    assert periods == {"p1", "p2"}
    assert states == {"p2": OutboxState.PENDING}


@pytest.mark.parametrize(
    ("written", "expected"),
    [("", timedelta(days=400)), ('retention = "90d"', timedelta(days=90))],
)
def test_retention_default_and_setting(harness: Harness, written: str, expected: timedelta) -> None:
    """Unset, the ledger keeps 400 days; [store] retention changes it."""
    path = harness.write(ESCALATE)
    path.write_text(path.read_text().replace("[store]\n", f"[store]\n{written}\n"))
    assert load_config(path).store.retention == expected


def test_a_retention_under_30_days_is_refused(harness: Harness) -> None:
    """A short retention would forget what guards actions soon after: exit 78, one line."""
    path = harness.write(ESCALATE)
    path.write_text(path.read_text().replace("[store]\n", '[store]\nretention = "7d"\n'))
    with pytest.raises(ConfigError, match=r"store\.retention: 7d is too short; keep at least 30d"):
        load_config(path)


def test_the_walk_over_old_events_resumes_where_it_stopped(
    ledger_target: LedgerTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each prune looks at a bounded window of old events, the next one after it, then the
    walk starts over: incidents kept (asked about lately) never starve the others."""
    monkeypatch.setattr("automations.ledger.retention.SCAN_ROWS", 2)
    now = datetime.fromisoformat("2030-06-01T00:00:00+00:00")  # pure SQL: any fixed instant
    cutoff, later = now - 400 * D, now + 8 * D
    with Ledger(ledger_target) as ledger:
        for n, incident_id in enumerate(["01KEPT1", "01KEPT2", "01OLD3", "01OLD4", "01OLD5"]):
            applied(ledger, incident_id, now - 450 * D + n * H)
        ledger.retention.keep_incident("01KEPT1", now)
        ledger.retention.keep_incident("01KEPT2", now)
        windows = [
            ledger.retention.candidates(cutoff, checked_before=now - 7 * D, limit=10)
            for _ in range(4)
        ]
        for incident_id in ("01OLD3", "01OLD4", "01OLD5"):
            ledger.retention.forget_incident(incident_id, cutoff)
        # A week later the kept ones are asked about again (the walk first ends, then restarts).
        again = [
            ledger.retention.candidates(cutoff, checked_before=later - 7 * D, limit=10)
            for _ in range(2)
        ]
    assert windows == [[], ["01OLD3", "01OLD4"], ["01OLD5"], []]
    assert again == [[], ["01KEPT1", "01KEPT2"]]


def test_a_reloaded_config_keeps_pruning(store_harness: Harness) -> None:
    """After SIGHUP's reload the daemon's cycles still prune the ledger."""
    harness = store_harness
    harness.write(ESCALATE)
    now = harness.sandbox.now()
    closed = harness.add("Closed long ago", age=500 * D, status="Closed", updated_at=now - 450 * D)
    with harness.open_ledger() as ledger:
        applied(ledger, closed["id"], now - 450 * D)
    running = harness.runtime()
    try:
        reloaded = prepare_reload(running).runtime
        run_once(reloaded)
    finally:
        running.close()
    assert incidents_with_events(harness.ledger_target) == set()
