"""The built-in rules against the sandbox with its clock moved: right incidents, fields, flag."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, ClassVar, Literal

import pytest

from automations.daemon import run_once
from automations.incidentio import Incident
from automations.ledger import EventState, Ledger
from automations.rules.escalate import EscalateSeverity, EscalateSeverityOptions
from automations.rules.registry import RuleRegistry
from tests.engine_harness import Harness

ESCALATE = """
[[rules]]
name = "escalate-minor"
type = "escalate_severity"
every = "1m"
where = { status_category = ["live"] }
steps = [ { after = "2h", to = "Major" }, { after = "6h", to = "Critical" } ]
notify_incident_channel = true
"""

H = timedelta(hours=1)


def test_escalation_edits_only_due_incidents_with_the_rule_flag(harness: Harness) -> None:
    harness.write(ESCALATE)
    stuck = harness.add("Stuck minor", age=3 * H)
    young = harness.add("Young minor", age=1 * H)
    old_major = harness.add("Old major", age=7 * H, severity="Major")
    learning = harness.add("Learning minor", age=3 * H, status="Documenting")
    test_mode = harness.add("Test minor", age=3 * H, mode="test")
    critical = harness.add("Already critical", age=9 * H, severity="Critical")

    (report,) = harness.cycle()

    assert report.ok
    assert report.applied == 2
    assert harness.severity(stuck["id"]) == "Major"
    assert harness.severity(old_major["id"]) == "Critical"
    for untouched in (young, learning, test_mode):
        assert harness.severity(untouched["id"]) == "Minor"
    assert harness.severity(critical["id"]) == "Critical"
    posts = harness.posts()
    assert sorted(p["path"].split("/")[3] for p in posts) == sorted([stuck["id"], old_major["id"]])
    for post in posts:
        assert post["body"]["notify_incident_channel"] is True
        assert set(post["body"]["incident"]) == {"severity_id"}

    # Two hours on: the young one is due; the stuck one (now 5h, Major) is not yet Critical.
    harness.sandbox.advance_clock(2 * 3600)
    (report,) = harness.cycle()
    assert report.applied == 1
    assert harness.severity(young["id"]) == "Major"
    assert harness.severity(stuck["id"]) == "Major"

    harness.sandbox.advance_clock(2 * 3600)
    (report,) = harness.cycle()
    assert harness.severity(stuck["id"]) == "Critical"
    assert len(harness.posts()) == 4


def test_a_human_lowering_severity_is_not_fought(harness: Harness) -> None:
    harness.write(ESCALATE)
    incident = harness.add("Lowered by a human", age=3 * H)
    harness.cycle()
    assert harness.severity(incident["id"]) == "Major"

    harness.sandbox.update_incident(incident["id"], severity="Minor")
    harness.cycle()
    harness.cycle()

    assert harness.severity(incident["id"]) == "Minor"
    assert len(harness.posts()) == 1


def test_escalation_from_a_named_timestamp(harness: Harness) -> None:
    harness.write(ESCALATE.replace('every = "1m"', 'every = "1m"\nsince = "Impact started"'))
    now = harness.sandbox.now()
    impact_long_ago = harness.add(
        "Impact 3h ago", age=10 * timedelta(minutes=1),
        timestamps={"Impact started": (now - 3 * H).isoformat()},
    )  # fmt: skip
    no_impact = harness.add("No impact timestamp", age=9 * H)

    harness.cycle()

    assert harness.severity(impact_long_ago["id"]) == "Major"
    assert harness.severity(no_impact["id"]) == "Minor"


CLOSE = """
[[rules]]
name = "close-learning"
type = "sync_status"
every = "15m"
where = { status_category = ["learning"] }
require = { postmortem = "present", idle_for = "7d" }
to_status = "Closed"
notify_incident_channel = false
"""

DAY = timedelta(days=1)


def test_sync_status_closes_only_finished_incidents(harness: Harness) -> None:
    harness.write(CLOSE)
    now = harness.sandbox.now()
    doc = "https://docs.example.com/postmortem"
    done = harness.add(
        "Done", age=20 * DAY, status="Documenting", severity="Major",
        postmortem_document_url=doc, updated_at=now - 8 * DAY,
    )  # fmt: skip
    no_doc = harness.add(
        "No postmortem", age=20 * DAY, status="Documenting", updated_at=now - 8 * DAY
    )
    busy = harness.add(
        "Recently updated", age=20 * DAY, status="Documenting",
        postmortem_document_url=doc, updated_at=now - 2 * DAY,
    )  # fmt: skip
    live = harness.add("Live", age=20 * DAY, postmortem_document_url=doc, updated_at=now - 8 * DAY)

    (report,) = harness.cycle()

    assert report.ok
    assert report.applied == 1
    assert harness.status(done["id"]) == "Closed"
    assert harness.status(no_doc["id"]) == "Documenting"
    assert harness.status(busy["id"]) == "Documenting"
    assert harness.status(live["id"]) == "Investigating"
    (post,) = harness.posts()
    assert post["body"]["notify_incident_channel"] is False
    assert set(post["body"]["incident"]) == {"incident_status_id"}

    # Five idle days later the busy one qualifies too.
    harness.sandbox.advance_clock(6 * 86400)
    harness.cycle()
    assert harness.status(busy["id"]) == "Closed"


MIRROR = """
[[rules]]
name = "phase"
type = "sync_status"
every = "5m"
where = { status_category = ["live", "learning"] }
mirror = { field = "Phase" }
"""


def test_mirror_edits_only_incidents_whose_field_differs(harness: Harness) -> None:
    harness.write(MIRROR)
    wrong = harness.add("Phase says Triage", age=H, custom_fields={"Phase": "Triage"})
    unset = harness.add("No phase", age=H, status="Documenting")
    right = harness.add("Phase right", age=H, custom_fields={"Phase": "Active"})

    harness.cycle()

    def phase(incident_id: str) -> str | None:
        for entry in harness.sandbox.incident(incident_id)["custom_field_entries"]:
            if entry["custom_field"]["name"] == "Phase" and entry["values"]:
                return str(entry["values"][0]["value_option"]["value"])
        return None

    assert phase(wrong["id"]) == "Active"
    assert phase(unset["id"]) == "Post-incident"
    assert phase(right["id"]) == "Active"
    assert {p["path"].split("/")[3] for p in harness.posts()} == {wrong["id"], unset["id"]}


def test_safety_brake_stops_a_rule_that_would_edit_everything(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.write(ESCALATE + "max_actions_per_cycle = 3\n")
    for n in range(12):
        harness.add(f"Stuck {n}", age=3 * H)

    with caplog.at_level(logging.ERROR):
        (report,) = harness.cycle()

    assert report.applied == 3
    assert report.rules[0].braked == 9
    assert len(harness.posts()) == 3
    assert "SAFETY BRAKE" in caplog.text
    assert "escalate-minor" in caplog.text


def test_rules_sharing_a_query_poll_it_once(harness: Harness) -> None:
    for n in range(260):  # two pages
        harness.add(f"Incident {n}", age=H)
    one_rule = ESCALATE
    idle_live = CLOSE.replace('["learning"]', '["live"]').replace('"7d"', '"30d"')
    many_rules = "".join(ESCALATE.replace("escalate-minor", f"escalate-{n}") for n in range(5))
    many_rules += idle_live.replace('every = "15m"', 'every = "1m"')

    harness.write(one_rule)
    harness.cycle()
    single = harness.list_requests()
    harness.sandbox.clear_requests()
    harness.write(many_rules)
    (report,) = harness.cycle()

    assert single == 2
    assert harness.list_requests() == single
    assert report.queries == 1
    assert report.incidents_seen == 260


def test_events_record_the_request_and_the_api_request_id(harness: Harness) -> None:
    harness.write(ESCALATE)
    incident = harness.add("Stuck", age=3 * H)
    harness.cycle()

    with Ledger(harness.ledger_path) as ledger:
        (event,) = ledger.events.history()
    (post,) = harness.posts()
    assert event.state is EventState.APPLIED
    assert event.incident_id == incident["id"]
    assert event.request_id == post["request_id"]
    assert event.request_body == post["body"]
    assert "Minor" in event.reason
    assert "Major" in event.reason


class _RecordingOptions(EscalateSeverityOptions):
    type: Literal["recording"]  # type: ignore[assignment]


class _BrokenOptions(EscalateSeverityOptions):
    type: Literal["broken"]  # type: ignore[assignment]


class _Recording(EscalateSeverity):
    """Escalates like the built-in, remembering how many incidents each call was handed."""

    options_model = _RecordingOptions
    calls: ClassVar[list[int]] = []

    def evaluate(self, incidents: Sequence[Incident], *args: Any, **kwargs: Any) -> Any:
        _Recording.calls.append(len(incidents))
        return super().evaluate(incidents, *args, **kwargs)


class _Broken(EscalateSeverity):
    options_model = _BrokenOptions

    def evaluate(self, incidents: Sequence[Incident], *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in a plugin")


def test_rules_see_one_page_at_a_time_and_a_broken_rule_spares_the_others(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(260):
        harness.add(f"Young {n}", age=H)
    stuck = harness.add("Stuck", age=3 * H)
    harness.write(
        ESCALATE.replace("escalate_severity", "recording")
        + ESCALATE.replace("escalate-minor", "broken").replace("escalate_severity", "broken")
    )
    _Recording.calls.clear()
    registry = RuleRegistry(extra={"recording": _Recording, "broken": _Broken})
    runtime = harness.runtime(registry=registry)
    try:
        with caplog.at_level(logging.ERROR):
            (report,) = run_once(runtime)
    finally:
        runtime.close()

    # Two pages, then the re-check of the one incident before its edit.
    assert _Recording.calls == [250, 11, 1], "evaluated page by page, never all at once"
    assert report.incidents_seen == 261
    assert report.applied == 1
    assert harness.severity(stuck["id"]) == "Major"
    broken = next(r for r in report.rules if r.rule == "broken")
    assert broken.failure is not None
    assert str(broken.failure) == "RuntimeError: a bug in a plugin"
    assert "rule broken failed to evaluate and skips this cycle" in caplog.text
