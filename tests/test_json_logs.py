"""`--log-format json`: each action's line carries rule, incident, event key, from, to, outcome."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from tests.engine_harness import Harness

H = timedelta(hours=1)

# Two rules with the same ladder: the second finds every incident the first escalated
# already at Major when it re-reads it, so it skips; that gives every outcome in one run.
TWO_LADDERS = "".join(
    f"""
[[rules]]
name = "{name}"
type = "escalate_severity"
every = "1m"
where = {{ status_category = ["live"] }}
steps = [ {{ after = "2h", to = "Major" }} ]
notify_incident_channel = false
"""
    for name in ("first", "second")
)


def _actions(stderr: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Action lines by (rule, incident reference); every line must be JSON."""
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for line in lines:
        if "outcome" in line:
            key = (line["rule"], line["incident_reference"])
            assert key not in found, f"two lines for {key}"
            found[key] = line
    return found


def test_action_lines_carry_structured_fields(harness: Harness) -> None:
    """A real `once`: applied, skipped, failed and reconciled lines, each with its fields."""
    harness.write(TWO_LADDERS)
    crashed = harness.add("Crashed mid-edit", age=3 * H)
    assert harness.cli("once", AUTOMATIONS_FAILPOINTS="after_edit").returncode == 137
    stuck = harness.add("Stuck", age=3 * H)
    refused = harness.add("Refused", age=3 * H)
    harness.sandbox.set_faults(
        next=[{"kind": "status", "status": 422}],
        paths=[f"/v2/incidents/{refused['id']}/actions/edit"],
    )

    result = harness.cli("--log-format", "json", "once")

    assert result.returncode == 1, result.stderr  # the refused edit failed the run
    actions = _actions(result.stderr)
    assert set(actions) == {
        ("first", crashed["reference"]),
        ("first", stuck["reference"]),
        ("second", stuck["reference"]),
        ("first", refused["reference"]),
        ("second", refused["reference"]),
    }
    applied = actions["first", stuck["reference"]]
    assert applied["outcome"] == "applied"
    assert applied["level"] == "info"
    assert applied["incident_id"] == stuck["id"]
    assert applied["incident_name"] == "Stuck"
    assert applied["event_key"].startswith(f"first/{stuck['id']}/severity-")
    assert applied["kind"] == "escalate"
    assert (applied["from"], applied["to"]) == ("Minor", "Major")
    assert "severity Minor -> Major" in applied["reason"]
    assert applied["reason"] in applied["message"]

    skipped = actions["second", stuck["reference"]]
    assert skipped["outcome"] == "skipped"
    assert skipped["reason"] == "no longer applies after re-reading the incident"
    assert (skipped["from"], skipped["to"]) == ("Minor", "Major")

    failed = actions["first", refused["reference"]]
    assert failed["outcome"] == "failed"
    assert failed["level"] == "error"
    assert "422" in failed["error"]
    assert (failed["from"], failed["to"]) == ("Minor", "Major")
    assert actions["second", refused["reference"]]["outcome"] == "applied"

    reconciled = actions["first", crashed["reference"]]
    assert reconciled["outcome"] == "reconciled"
    assert reconciled["incident_id"] == crashed["id"]
    assert reconciled["event_key"].startswith(f"first/{crashed['id']}/severity-")
    assert reconciled["reason"] == "edit found applied after an interrupted run"
