"""The mirror acts once per change of category: restored on a return, never fighting a human.

Its event key names the change (the incident update that moved the incident into
its category), so live -> learning -> live sets the field back, a repeated poll of
the same state does nothing, and a human who changes the field after the rule set
it is left alone, by the next cycles and by reconcile after a crash.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from automations.daemon import run_once
from automations.errors import SimulatedCrash
from automations.failpoints import Failpoints
from automations.ledger import EventState, Ledger
from automations.rules.base import EvaluationContext
from automations.rules.sync_status import SyncStatus, SyncStatusOptions
from tests.engine_harness import Harness
from tests.factories import CATALOG, NOW, incident
from tests.test_engine_sandbox import MIRROR
from tests.test_escalate_anchors import update

H = timedelta(hours=1)
M = timedelta(minutes=1)


def mirror() -> SyncStatus:
    options = SyncStatusOptions.model_validate(
        {
            "type": "sync_status",
            "name": "phase",
            "every": "5m",
            "where": {"status_category": ["live", "learning"]},
            "mirror": {"field": "Phase"},
        }
    )
    return SyncStatus(options, CATALOG)


def test_the_key_names_the_change_of_category() -> None:
    """No update or the first stretch: the plain key; a return: the update that made it."""
    rule = mirror()
    live = incident(age=5 * H, status="Investigating")
    to_learning = update(live, 3 * H, "Documenting")
    back = update(live, 1 * H, "Fixing")
    learning = incident(age=5 * H, status="Documenting")

    def key(item: Any, updates: list[Any]) -> str:
        (action,) = rule.evaluate([item], EvaluationContext(NOW, CATALOG, None, {item.id: updates}))
        return action.event_key

    assert key(live, []) == f"phase/{live.id}/mirror-live"
    assert key(learning, [update(learning, 3 * H, "Documenting")]) == (
        f"phase/{learning.id}/mirror-learning"
    )
    returned = incident(age=5 * H, status="Fixing")
    history = [update(returned, 4 * H, "Investigating"), to_learning, back]
    history = [u.model_copy(update={"incident_id": returned.id}) for u in history]
    assert key(returned, history) == f"phase/{returned.id}/mirror-live-{back.id}"
    # Changes within live do not make a new stretch; a poll of the same state, the same key.
    within = [*history, update(returned, 30 * M, "Investigating")]
    assert key(returned, within) == key(returned, history)
    # A change of category the updates do not show: named after the last update.
    unrecorded = incident(age=5 * H, status="Investigating")
    assert key(unrecorded, [update(unrecorded, 2 * H, "Documenting")]).endswith(
        f"/mirror-live-after-UPD-{unrecorded.id}-7200"
    )


def test_updates_are_needed_only_where_the_field_differs() -> None:
    """One request per incident whose field is not yet its category's option, none otherwise."""
    rule = mirror()
    assert rule.needs_updates(incident(status="Investigating"), NOW)
    assert not rule.needs_updates(incident(status="Fixing", fields={"Phase": "Active"}), NOW)
    assert not rule.needs_updates(incident(status="Investigating", mode="test"), NOW)


def phase(harness: Harness, incident_id: str) -> str | None:
    for entry in harness.sandbox.incident(incident_id)["custom_field_entries"]:
        if entry["custom_field"]["name"] == "Phase" and entry["values"]:
            return str(entry["values"][0]["value_option"]["value"])
    return None


def test_the_field_is_restored_when_an_incident_returns_to_a_category(harness: Harness) -> None:
    """live -> learning -> live sets Active, Post-incident, then Active again; a repeated
    poll of the same state edits nothing."""
    harness.write(MIRROR)
    item = harness.add("Comes back", age=3 * H)
    seen = []
    for status in ("Investigating", "Documenting", "Fixing"):
        if status != "Investigating":
            harness.sandbox.advance_clock(600)
            harness.sandbox.update_incident(item["id"], status=status)
        harness.cycle()
        harness.cycle()  # the same state again: nothing more
        seen.append(phase(harness, item["id"]))

    assert seen == ["Active", "Post-incident", "Active"]
    assert len(harness.posts()) == 3


def test_a_human_change_of_the_mirrored_field_is_not_fought(harness: Harness) -> None:
    """After the rule set Active, a human sets Post-incident: left alone until the next
    change of category, which the rule acts on again."""
    harness.write(MIRROR)
    item = harness.add("Human knows best", age=3 * H)
    harness.cycle()
    assert phase(harness, item["id"]) == "Active"

    harness.sandbox.update_incident(item["id"], custom_fields={"Phase": "Post-incident"})
    harness.cycle()
    harness.cycle()
    assert phase(harness, item["id"]) == "Post-incident"
    assert len(harness.posts()) == 1

    harness.sandbox.advance_clock(600)
    harness.sandbox.update_incident(item["id"], status="Documenting")
    harness.sandbox.advance_clock(600)
    harness.sandbox.update_incident(item["id"], status="Investigating")
    harness.cycle()
    assert phase(harness, item["id"]) == "Active"
    assert len(harness.posts()) == 2


def test_reconcile_leaves_a_field_a_human_changed_after_a_crash(harness: Harness) -> None:
    """The edit landed, the process died before recording it, then a human changed the field:
    the restart's reconcile cannot see our value but sees the incident changed since the
    claim, so it leaves it (skipped) instead of releasing the key to re-apply it."""
    harness.write(MIRROR)
    item = harness.add("Crash, then a human", age=3 * H)
    points = Failpoints()
    points.arm("after_edit")
    runtime = harness.runtime(failpoints=points)
    try:
        with pytest.raises(SimulatedCrash):
            run_once(runtime)
    finally:
        runtime.close()
    assert phase(harness, item["id"]) == "Active"
    harness.sandbox.advance_clock(60)
    harness.sandbox.update_incident(item["id"], custom_fields={"Phase": "Post-incident"})

    harness.cycle()  # the restart: reconcile, then a cycle
    harness.cycle()

    assert phase(harness, item["id"]) == "Post-incident"
    assert len(harness.posts()) == 1
    with Ledger(harness.ledger_path) as ledger:
        (event,) = ledger.events.history()
    assert event.state == EventState.SKIPPED
    assert "changed since" in event.reason


def test_reconcile_releases_a_mirror_edit_that_did_not_land(harness: Harness) -> None:
    """Crashed before the edit and nothing changed the incident since: released, re-applied."""
    harness.write(MIRROR)
    item = harness.add("Crash before the edit", age=3 * H)
    points = Failpoints()
    points.arm("after_reread")
    runtime = harness.runtime(failpoints=points)
    try:
        with pytest.raises(SimulatedCrash):
            run_once(runtime)
    finally:
        runtime.close()
    assert phase(harness, item["id"]) is None

    harness.cycle()

    assert phase(harness, item["id"]) == "Active"
    with Ledger(harness.ledger_path) as ledger:
        (event,) = ledger.events.history()
    assert event.state == EventState.APPLIED
