"""An undecodable ledger row is quarantined and reported once; cycles and restarts carry on.

The rows are broken the way a hand edit or a bad restore breaks them: written
with SQL directly, past the ledger's own checks; on both backends.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from automations.daemon import run_once
from automations.ledger import EventState, Ledger, OutboxState
from tests.engine_harness import Harness
from tests.ledger_backends import LedgerTarget, raw
from tests.test_edit_once import ESCALATE_MINOR

H = timedelta(hours=1)
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
QUARANTINED = "quarantined: copied to the quarantine table"


def _insert(target: LedgerTarget, table: str, **row: Any) -> None:
    """Write a row behind the ledger's back, as a hand edit would."""
    names = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    with Ledger(target) as ledger:
        raw(ledger, f"INSERT INTO {table} ({names}) VALUES ({marks})", list(row.values()))


def _broken_claim(harness: Harness, key: str, incident_id: str, claimed_at: str) -> None:
    _insert(
        harness.ledger_target,
        "events",
        rule="escalate-minor",
        incident_id=incident_id,
        incident_reference="INC-1",
        event_key=key,
        state="planned",
        reason="claimed before a bad restore",
        request_body=json.dumps({"incident": {"severity_id": "x"}}),
        claimed_at=claimed_at,
        attempts=1,
    )


def _due_key(harness: Harness) -> tuple[str, str]:
    """The event key the rule would claim now for its one due incident, and that incident."""
    stuck = harness.add("Stuck", age=3 * H)
    runtime = harness.runtime()
    try:
        (action,), _ = runtime.engine.plan(runtime.rules)
    finally:
        runtime.close()
    return action.event_key, str(stuck["id"])


@pytest.mark.parametrize("claimed_at", ["yesterday", "2026-11-23T08:00:00"])
def test_an_unreadable_claim_is_quarantined_once_and_its_key_stays_taken(
    store_harness: Harness, caplog: pytest.LogCaptureFixture, claimed_at: str
) -> None:
    """A planned row with a bad (or timezone-less) time: cycles go on, nothing sent, one log."""
    harness = store_harness
    harness.write(ESCALATE_MINOR)
    key, incident_id = _due_key(harness)
    _broken_claim(harness, key, incident_id, claimed_at)
    runtime = harness.runtime()
    try:
        with caplog.at_level(logging.ERROR):
            reports = [*run_once(runtime), *run_once(runtime)]
    finally:
        runtime.close()

    assert all(report.ok for report in reports), [report.line() for report in reports]
    assert harness.posts() == []  # its key is taken: the action is not repeated
    logged = [r.getMessage() for r in caplog.records if QUARANTINED in r.getMessage()]
    assert len(logged) == 1, logged
    assert key in logged[0]
    with harness.open_ledger() as ledger:
        (event,) = ledger.events.history()
        (kept,) = ledger.quarantine.rows()
    assert event.state is EventState.QUARANTINED
    assert event.event_key == key
    assert event.error is not None
    assert "could not be read" in event.error
    assert kept.source == "events"
    assert json.loads(kept.row)["claimed_at"] == claimed_at  # the row as it was


def test_a_restart_does_not_crash_loop_and_history_shows_the_row(store_harness: Harness) -> None:
    """`once` twice exits 0 with a broken row; it is reported once; `history` shows it."""
    harness = store_harness
    harness.write(ESCALATE_MINOR)
    key, incident_id = _due_key(harness)
    _broken_claim(harness, key, incident_id, "yesterday")

    first = harness.cli("once")
    second = harness.cli("once")
    text = harness.cli("history")
    rows = json.loads(harness.cli("history", "--state", "quarantined", "--json").stdout)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert QUARANTINED in first.stderr
    assert QUARANTINED not in second.stderr  # reported once
    assert "quarantined" in text.stdout
    assert "could not be read" in text.stdout
    assert [(row["event_key"], row["state"]) for row in rows] == [(key, "quarantined")]
    assert harness.posts() == []


def test_an_unreadable_run_is_moved_out_and_listed_by_history(store_harness: Harness) -> None:
    """A run with an unknown status leaves `runs` for `quarantine`; `history` says so."""
    harness = store_harness
    harness.write(ESCALATE_MINOR)
    _insert(
        harness.ledger_target, "runs", schedule="every 1m", started_at=T0.isoformat(), status="?"
    )
    with harness.open_ledger() as ledger:
        assert ledger.runs.history() == []
        assert ledger.runs.history() == []
        (kept,) = ledger.quarantine.rows()
    text = harness.cli("history")

    assert kept.source == "runs"
    assert "ValueError" in kept.error
    assert text.returncode == 0, text.stderr
    assert "runs row 1" in text.stderr


def test_an_unreadable_digest_is_never_sent_nor_queued_again(ledger_target: LedgerTarget) -> None:
    """An outbox row with broken recipients is not due, and its period stays taken."""
    path = ledger_target
    period = "2026-11-23T08:00+00:00"
    _insert(
        path,
        "outbox",
        digest="daily",
        period=period,
        state="pending",
        subject="Incidents",
        recipients="[not json",
        message=b"Subject: x\r\n\r\nx",
        message_id="<x@example.com>",
        attempts=0,
        next_attempt_at=T0.isoformat(),
        created_at=T0.isoformat(),
        expires_at=(T0 + 24 * H).isoformat(),
    )
    with Ledger(path) as ledger:
        due = ledger.outbox.due(now=T0 + H)
        found = ledger.outbox.find("daily", period)
        periods = ledger.outbox.periods("daily")
        queued_again = ledger.outbox.enqueue(
            digest="daily",
            period=period,
            subject="Incidents",
            recipients=["a@example.com"],
            message=b"x",
            message_id="<y@example.com>",
            expires_at=T0 + 24 * H,
            now=T0 + H,
        )
        (kept,) = ledger.quarantine.rows()

    assert due == []
    assert found is not None
    assert found.state is OutboxState.QUARANTINED
    assert periods == [(period, OutboxState.QUARANTINED)]
    assert not queued_again
    assert kept.source == "outbox"
    assert json.loads(kept.row)["recipients"] == "[not json"


@pytest.mark.parametrize("value", ["soon", "nan", "1e400"])
def test_an_unreadable_clock_offset_is_forgotten_not_fatal(
    ledger_target: LedgerTarget, value: str
) -> None:
    """A meta clock offset that is not a number reads as never learned (then relearned)."""
    path = ledger_target
    _insert(path, "meta", key="clock_offset_seconds", value=value)
    with Ledger(path) as ledger:
        assert ledger.meta.clock_offset() is None
        ledger.meta.save_clock_offset(timedelta(seconds=5))
        assert ledger.meta.clock_offset() == timedelta(seconds=5)
