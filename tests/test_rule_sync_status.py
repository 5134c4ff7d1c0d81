"""sync_status evaluated purely: transitions with requirements, and mirroring a category."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from automations.errors import ConfigError
from automations.incidentio import FollowUp
from automations.rules.base import EvaluationContext
from automations.rules.sync_status import SyncStatus, SyncStatusOptions, transition_allowed
from tests.factories import CATALOG, NOW, incident


def make(**overrides: Any) -> SyncStatus:
    options: dict[str, Any] = {
        "type": "sync_status",
        "name": "close",
        "every": "15m",
        "where": {"status_category": ["learning"]},
        "to_status": "Closed",
        "require": {"postmortem": "present", "idle_for": "7d"},
    }
    options.update(overrides)
    return SyncStatus(SyncStatusOptions.model_validate(options), CATALOG)


def test_transition_requires_every_condition() -> None:
    """Only the learning incident with a postmortem and 7 idle days is closed."""
    rule = make()
    ready = incident(status="Documenting", postmortem=True, idle=timedelta(days=8))
    no_pm = incident(status="Documenting", idle=timedelta(days=8))
    busy = incident(status="Documenting", postmortem=True, idle=timedelta(days=2))
    actions = rule.evaluate([ready, no_pm, busy], EvaluationContext(NOW, CATALOG))
    assert [a.incident_reference for a in actions] == [ready.reference]
    assert actions[0].request_body() == {
        "incident": {"incident_status_id": "ST-CLOSED"},
        "notify_incident_channel": False,
    }
    assert "Documenting -> Closed" in actions[0].reason
    assert "postmortem present" in actions[0].reason


def follow_up(incident_id: str, status: str) -> FollowUp:
    return FollowUp.model_validate(
        {
            "id": f"FU-{incident_id}-{status}",
            "incident_id": incident_id,
            "title": "fix it",
            "status": status,
            "labels": [],
            "created_at": NOW.isoformat(),
            "updated_at": NOW.isoformat(),
        }
    )


def test_roles_fields_age_and_follow_ups() -> None:
    """Role, custom field, age and follow-up conditions each gate the move."""
    rule = make(
        require={
            "role": {"Incident Lead": "assigned"},
            "custom_field": {"Team": ["Payments"]},
            "age": "1d",
            "follow_ups": "completed",
        }
    )
    good = incident(
        status="Documenting", lead=True, fields={"Team": "Payments"}, age=timedelta(days=2)
    )
    no_lead = incident(status="Documenting", fields={"Team": "Payments"}, age=timedelta(days=2))
    other_team = incident(
        status="Documenting", lead=True, fields={"Team": "Platform"}, age=timedelta(days=2)
    )
    young = incident(status="Documenting", lead=True, fields={"Team": "Payments"})
    open_follow_up = incident(
        status="Documenting", lead=True, fields={"Team": "Payments"}, age=timedelta(days=2)
    )

    follow_ups = {
        good.id: [follow_up(good.id, "completed"), follow_up(good.id, "not_doing")],
        open_follow_up.id: [follow_up(open_follow_up.id, "outstanding")],
    }
    candidates = [good, no_lead, other_team, young, open_follow_up]
    actions = rule.evaluate(candidates, EvaluationContext(NOW, CATALOG, follow_ups))
    assert [a.incident_reference for a in actions] == [good.reference]
    assert rule.needs_follow_ups


def test_refused_targets_are_config_errors() -> None:
    """Moves the API refuses (into declined, out of closed, triage->live) fail at start-up."""
    with pytest.raises(ConfigError, match="refuses moving triage incidents to 'Declined'"):
        make(where={"status_category": ["triage"]}, to_status="Declined", require={})
    with pytest.raises(ConfigError, match="refuses moving triage incidents to 'Investigating'"):
        make(where={"status_category": ["triage"]}, to_status="Investigating", require={})
    with pytest.raises(ConfigError, match=r"where\.status_category: is required"):
        make(where={}, to_status="Closed", require={})
    assert transition_allowed("live", "learning")
    assert transition_allowed("learning", "closed")
    assert not transition_allowed("closed", "closed")
    assert not transition_allowed("learning", "live")


def test_mirror_edits_only_when_different() -> None:
    """The Phase field follows the category, using the app's labels, and only when it differs."""
    rule = make(
        to_status=None,
        require={},
        mirror={"field": "Phase"},
        where={"status_category": ["live", "learning"]},
    )
    live_unset = incident(status="Investigating")
    live_ok = incident(status="Fixing", fields={"Phase": "Active"})
    learning_wrong = incident(status="Documenting", fields={"Phase": "Active"})
    actions = rule.evaluate([live_unset, live_ok, learning_wrong], EvaluationContext(NOW, CATALOG))
    assert [(a.incident_reference, a.request_body()["incident"]) for a in actions] == [
        (
            live_unset.reference,
            {
                "custom_field_entries": [
                    {"custom_field_id": "CF-PHASE", "values": [{"value_option_id": "PH-ACTIVE"}]}
                ]
            },
        ),
        (
            learning_wrong.reference,
            {
                "custom_field_entries": [
                    {
                        "custom_field_id": "CF-PHASE",
                        "values": [{"value_option_id": "PH-POST-INCIDENT"}],
                    }
                ]
            },
        ),
    ]
    assert actions[0].event_key == f"close/{live_unset.id}/mirror-live"


def test_mirror_config_errors() -> None:
    """A text field, or an option that does not exist, cannot be mirrored into."""
    with pytest.raises(ConfigError, match=r"mirror\.field: 'Affected service' is a text field"):
        make(to_status=None, require={}, mirror={"field": "Affected service"})
    with pytest.raises(ConfigError, match=r"mirror.options.live: 'Busy' is not a known option"):
        make(to_status=None, require={}, mirror={"field": "Phase", "options": {"live": "Busy"}})
    with pytest.raises(ValueError, match="exactly one of to_status or mirror"):
        make(to_status=None, require={})


def test_deleted_follow_ups_do_not_count_and_unknown_statuses_hold() -> None:
    """not_doing is done, deleted is ignored (not counted), a status the API adds later holds."""
    rule = make(require={"follow_ups": "completed"})
    mixed, only_deleted, newer = (incident(status="Documenting") for _ in range(3))
    follow_ups = {
        mixed.id: [
            follow_up(mixed.id, "completed"),
            follow_up(mixed.id, "not_doing"),
            follow_up(mixed.id, "deleted"),
        ],
        only_deleted.id: [follow_up(only_deleted.id, "deleted")],
        newer.id: [follow_up(newer.id, "completed"), follow_up(newer.id, "snoozed")],
    }
    actions = rule.evaluate(
        [mixed, only_deleted, newer], EvaluationContext(NOW, CATALOG, follow_ups)
    )
    reasons = {a.incident_id: a.reason for a in actions}
    assert set(reasons) == {mixed.id, only_deleted.id}
    assert reasons[mixed.id].endswith("all 2 follow-ups done")
    assert reasons[only_deleted.id].endswith("no follow-ups")
