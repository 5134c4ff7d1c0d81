"""test-rule applies every `where` filter offline and answers what plan answers, or refuses."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from automations.clock import host_now
from automations.config import load_config
from automations.engine import Engine
from automations.errors import ConfigError
from automations.offline import evaluate_offline
from automations.rules.base import PlannedAction
from tests.engine_harness import Harness

# Relative to the host's time (never a calendar date): yesterday, on the hour.
NOW = host_now().replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
ALL_MODES = ["standard", "retrospective", "test", "tutorial"]

# One rule per kind of filter, each with actions due in the seeded organisation.
RULES = """
[[rules]]
name = "ladder"
type = "escalate_severity"
every = "1m"
where = { status_category = ["live"], severity = ["Minor", "Major"] }
steps = [ { after = "2h", to = "Major" }, { after = "6h", to = "Critical" } ]
max_actions_per_cycle = 1000

[[rules]]
name = "teams"
type = "escalate_severity"
every = "1m"
where = { severity_at_most = "Major", custom_field = { Team = ["Payments", "Platform"] } }
steps = [ { after = "1d", to = "Critical" } ]
max_actions_per_cycle = 1000

[[rules]]
name = "unled"
type = "escalate_severity"
every = "1m"
steps = [ { after = "30m", to = "Major" } ]
max_actions_per_cycle = 1000
[rules.where]
incident_type = ["Default", "Customer-facing"]
role = { "Incident Lead" = "unassigned" }

[[rules]]
name = "statuses-and-modes"
type = "escalate_severity"
every = "1m"
where = { status = ["Investigating", "Fixing"], mode = ["standard", "test", "tutorial"] }
steps = [ { after = "1h", to = "Critical" } ]
max_actions_per_cycle = 1000

[[rules]]
name = "from-impact"
type = "escalate_severity"
every = "1m"
where = { severity_at_least = "Major", role = { "Communications Lead" = "assigned" } }
since = "Impact started"
steps = [ { after = "4h", to = "Critical" } ]
max_actions_per_cycle = 1000

[[rules]]
name = "close-idle"
type = "sync_status"
every = "1m"
where = { status_category = ["learning"], custom_field = { Phase = ["Post-incident"] } }
to_status = "Closed"
require = { idle_for = "1d" }
max_actions_per_cycle = 1000

[[rules]]
name = "mirror"
type = "sync_status"
every = "1m"
where = { status_category = ["live", "learning"], severity = ["Major"] }
mirror = { field = "Phase" }
max_actions_per_cycle = 1000
"""


def seeded(harness: Harness, rules: str) -> Path:
    """A seeded organisation at NOW, the rules, the catalog cached, and every incident saved."""
    harness.sandbox.reset(incidents=300, now=NOW, rate_limit_per_minute=100_000)
    harness.write(rules)
    harness.runtime().close()  # the daemon ran here once: the catalog is cached in the ledger
    with harness.sandbox.api() as api:
        params: list[tuple[str, str | int]] = [("page_size", 250)]
        params += [("mode[one_of]", mode) for mode in ALL_MODES]
        incidents: list[Any] = []
        after = None
        while True:
            body = api.get(
                "/v2/incidents", params=[*params, *([("after", after)] if after else [])]
            )
            incidents += body.json()["incidents"]
            after = body.json()["pagination_meta"].get("after")
            if not after:
                break
    saved = harness.tmp_path / "incidents.json"
    saved.write_text(json.dumps(incidents))
    return saved


def _key(action: PlannedAction) -> tuple[str, str, str]:
    return action.event_key, action.reason, json.dumps(action.request_body(), sort_keys=True)


def test_test_rule_answers_what_plan_answers_for_every_filter(harness: Harness) -> None:
    """Rule by rule, the same incidents at the same time give the same actions, reasons, bodies."""
    saved = seeded(harness, RULES)
    runtime = harness.runtime()
    try:
        engine = Engine(runtime.client, runtime.ledger, runtime.catalog, clock=lambda: NOW)
        planned, _ = engine.plan(runtime.rules)
    finally:
        runtime.close()
    config = load_config(harness.config_path)

    for rule in config.rules:
        offline = evaluate_offline(config, rule.name, saved, NOW.isoformat())
        from_plan = sorted(_key(a) for a in planned if a.rule == rule.name)
        assert sorted(_key(a) for a in offline) == from_plan, rule.name
        assert from_plan, f"{rule.name} has nothing due: the comparison would prove nothing"


def test_what_a_saved_page_cannot_tell_is_refused(harness: Harness) -> None:
    """Updates (since = live) and follow-ups are not in a saved page: refuse, never guess."""
    saved = seeded(
        harness,
        RULES
        + """
[[rules]]
name = "live-for-long"
type = "escalate_severity"
every = "1m"
where = { severity = ["Minor", "Major"] }
since = "live"
steps = [ { after = "2h", to = "Major" }, { after = "6h", to = "Critical" } ]

[[rules]]
name = "done-learning"
type = "sync_status"
every = "1m"
where = { status_category = ["learning"] }
to_status = "Closed"
require = { follow_ups = "completed" }
""",
    )
    config = load_config(harness.config_path)

    with pytest.raises(ConfigError) as live:
        evaluate_offline(config, "live-for-long", saved, NOW.isoformat())
    with pytest.raises(ConfigError) as follow_ups:
        evaluate_offline(config, "done-learning", saved, NOW.isoformat())
    quiet = evaluate_offline(
        config, "live-for-long", saved, (NOW - timedelta(days=400)).isoformat()
    )

    assert str(live.value).startswith("live-for-long: cannot be tested offline: judging INC-")
    assert "needs their incident updates" in str(live.value)
    assert "`automations plan --rule live-for-long` asks the API instead" in str(live.value)
    assert str(follow_ups.value).startswith(
        "done-learning: cannot be tested offline: it reads follow-ups"
    )
    assert quiet == [], "nothing could be due, so nothing needed the updates: an exact answer"
