"""max_actions_per_day: a rule makes at most that many edits in any 24 hours of API time."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from automations.rules.escalate import EscalateSeverityOptions
from tests.engine_harness import Harness

H = timedelta(hours=1)
CAPPED = """
[[rules]]
name = "to-major"
type = "escalate_severity"
every = "1m"
where = { status_category = ["live"] }
steps = [ { after = "2h", to = "Major" } ]
max_actions_per_day = 3
"""


def test_a_rule_stops_at_its_daily_cap_and_resumes_a_day_later(
    store_harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """3 a day: 5 due incidents get 3 edits, none in the next cycles that day, and the last 2
    once the first edits are more than 24 hours old (the count is the ledger's, on both
    backends)."""
    harness = store_harness
    harness.write(CAPPED)
    for n in range(5):
        harness.add(f"Stuck {n}", age=3 * H)

    with caplog.at_level(logging.ERROR):
        (first,) = harness.cycle()
    harness.sandbox.advance_clock(12 * 3600)
    (same_day,) = harness.cycle()
    plan = harness.cli("plan")
    harness.sandbox.advance_clock(12 * 3600 + 60)
    (next_day,) = harness.cycle()

    assert (first.applied, first.rules[0].braked) == (3, 2)
    assert (same_day.applied, same_day.rules[0].braked) == (0, 2)
    assert (next_day.applied, next_day.rules[0].braked) == (2, 0)
    assert len(harness.posts()) == 5
    assert "SAFETY BRAKE: rule to-major" in caplog.text
    assert "max_actions_per_day=3 (3 edits in the last 24 hours)" in caplog.text
    assert "nothing to do" in plan.stdout
    assert "(max_actions_per_day=3 (3 edits in the last 24 hours)); 2 more held back" in (
        plan.stderr
    )


def test_the_daily_cap_defaults_to_100() -> None:
    """Unset, a rule may make 100 edits a day; the per-cycle brake stays 10."""
    options = EscalateSeverityOptions.model_validate(
        {
            "type": "escalate_severity",
            "name": "r",
            "every": "1m",
            "steps": [{"after": "1h", "to": "Major"}],
        }
    )
    assert (options.max_actions_per_day, options.max_actions_per_cycle) == (100, 10)
