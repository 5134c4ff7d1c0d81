"""Which candidates are done is asked of the ledger for the candidates only, whatever its size."""

from __future__ import annotations

import sqlite3
import tracemalloc
from datetime import timedelta

from automations.ledger.base import to_text
from tests.engine_harness import Harness
from tests.test_engine_sandbox import ESCALATE

H = timedelta(hours=1)
EVENTS = 100_000


def test_a_cycle_does_not_load_every_key_of_the_rule(harness: Harness) -> None:
    """With 100,000 events of the rule in the ledger, planning 3 actions allocates under 4 MB
    (loading every key of the rule took 23 MB) and still skips a done key."""
    harness.write(ESCALATE)
    due = [harness.add(f"Stuck {n}", age=3 * H) for n in range(4)]
    runtime = harness.runtime()
    try:
        done_key = f"escalate-minor/{due[0]['id']}/severity-{runtime.catalog.severity('Major').id}"
        at = to_text(harness.sandbox.now() - 48 * H)  # outside the daily cap's window
        with sqlite3.connect(harness.ledger_path) as db:
            db.execute(
                """
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
                INSERT INTO events (rule, incident_id, incident_reference, event_key, state,
                                    reason, claimed_at, finished_at)
                SELECT 'escalate-minor', printf('01FAKE%020d', i), 'INC-' || i,
                       printf('escalate-minor/01FAKE%020d/severity-01MAJOR', i), 'applied',
                       'step 1', ?, ?
                FROM n
                """,
                [EVENTS, at, at],
            )
            db.execute(
                "INSERT INTO events (rule, incident_id, incident_reference, event_key, state, "
                "reason, claimed_at) VALUES ('escalate-minor', ?, 'INC-1', ?, 'applied', 'x', ?)",
                [due[0]["id"], done_key, at],
            )
        tracemalloc.start()
        try:
            actions, report = runtime.engine.plan(runtime.rules)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    finally:
        runtime.close()

    assert sorted(a.incident_id for a in actions) == sorted(i["id"] for i in due[1:])
    assert report.rules[0].already_done == 1
    assert peak < 4_000_000, f"{peak / 1e6:.1f} MB"
