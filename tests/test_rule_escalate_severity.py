"""escalate_severity evaluated purely: the right incidents, the right target, never lower."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from automations.errors import ConfigError
from automations.rules.base import EvaluationContext
from automations.rules.escalate import EscalateSeverity, EscalateSeverityOptions
from tests.factories import CATALOG, NOW, incident


def make(**overrides: Any) -> EscalateSeverity:
    options: dict[str, Any] = {
        "type": "escalate_severity",
        "name": "esc",
        "every": "1m",
        "where": {"status_category": ["live"]},
        "steps": [{"after": "2h", "to": "Major"}, {"after": "6h", "to": "Critical"}],
        "notify_incident_channel": True,
    }
    options.update(overrides)
    return EscalateSeverity(EscalateSeverityOptions.model_validate(options), CATALOG)


def test_steps_by_age() -> None:
    """Young incidents are left; a 3h one goes to Major; a 7h one straight to Critical."""
    rule = make()
    young, middle, old = (
        incident(age=timedelta(hours=1)),
        incident(age=timedelta(hours=3)),
        incident(age=timedelta(hours=7)),
    )
    actions = rule.evaluate([young, middle, old], EvaluationContext(NOW, CATALOG))
    assert [
        (a.incident_reference, a.request_body()["incident"]["severity_id"]) for a in actions
    ] == [
        (middle.reference, "SEV2"),
        (old.reference, "SEV3"),
    ]
    assert all(a.notify_incident_channel for a in actions)
    assert actions[0].request_body() == {
        "incident": {"severity_id": "SEV2"},
        "notify_incident_channel": True,
    }
    assert actions[0].event_key == f"esc/{middle.id}/severity-SEV2"
    assert "severity Minor -> Major" in actions[0].reason


def test_never_lowers_and_skips_already_at_target() -> None:
    """An incident already Critical (or Major when Major is due) gets no action."""
    rule = make()
    critical = incident(age=timedelta(hours=7), severity="Critical")
    major = incident(age=timedelta(hours=3), severity="Major")
    assert rule.evaluate([critical, major], EvaluationContext(NOW, CATALOG)) == []


def test_test_and_tutorial_untouched_unless_asked() -> None:
    """Test/tutorial incidents are skipped by default, included when where.mode lists them."""
    test_incident = incident(age=timedelta(hours=3), mode="test")
    assert make().evaluate([test_incident], EvaluationContext(NOW, CATALOG)) == []
    rule = make(where={"status_category": ["live"], "mode": ["test"]})
    assert len(rule.evaluate([test_incident], EvaluationContext(NOW, CATALOG))) == 1


def test_since_named_timestamp() -> None:
    """Age counts from 'Impact started' when since names it; without a value, no action."""
    rule = make(since="Impact started")
    early_impact = incident(age=timedelta(minutes=30), impact_started=timedelta(hours=3))
    no_impact = incident(age=timedelta(hours=10))
    actions = rule.evaluate([early_impact, no_impact], EvaluationContext(NOW, CATALOG))
    assert [a.incident_reference for a in actions] == [early_impact.reference]
    assert actions[0].reason == (
        "3h since Impact started (09:00 UTC); step 1 (after 2h): severity Minor -> Major"
    )


def test_default_query_is_live() -> None:
    """Without a status filter the server-side query asks only for live incidents."""
    rule = make(where={"severity": ["Minor", "Major"]})
    assert ("status_category[one_of]", "live") in rule.query().to_params()
    assert ("severity[one_of]", "SEV1") in rule.query().to_params()
    assert ("severity[one_of]", "SEV2") in rule.query().to_params()


def test_config_errors() -> None:
    """Unknown severity, unknown timestamp and a step that would not raise are config errors."""
    with pytest.raises(
        ConfigError, match=r"steps\[1\].to: 'Huge' is not a known severity; valid: "
    ):
        make(steps=[{"after": "1h", "to": "Major"}, {"after": "2h", "to": "Huge"}])
    with pytest.raises(
        ConfigError, match=r"since: 'Impact start' .* valid: Impact started, created"
    ):
        make(since="Impact start")
    with pytest.raises(
        ConfigError, match=r"steps\[1\].to: 'Minor' is not more severe than 'Major'"
    ):
        make(steps=[{"after": "1h", "to": "Major"}, {"after": "2h", "to": "Minor"}])
    with pytest.raises(ValueError, match="increasing"):
        make(steps=[{"after": "2h", "to": "Major"}, {"after": "1h", "to": "Critical"}])
