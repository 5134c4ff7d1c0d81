"""Reasons say how long, from when, in words a person would write: never '51d3h31m58s'."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from automations.rules.base import EvaluationContext
from automations.rules.escalate import EscalateSeverity, EscalateSeverityOptions
from automations.rules.sync_status import SyncStatus, SyncStatusOptions
from tests.factories import CATALOG, NOW, incident

ODD = timedelta(days=51, hours=3, minutes=31, seconds=58)


def escalate(**overrides: Any) -> EscalateSeverity:
    options: dict[str, Any] = {
        "type": "escalate_severity",
        "name": "esc",
        "every": "1m",
        "steps": [{"after": "2h", "to": "Major"}],
        **overrides,
    }
    return EscalateSeverity(EscalateSeverityOptions.model_validate(options), CATALOG)


def sync(require: dict[str, Any]) -> SyncStatus:
    options: dict[str, Any] = {
        "type": "sync_status",
        "name": "close",
        "every": "15m",
        "where": {"status_category": ["learning"]},
        "to_status": "Closed",
        "require": require,
    }
    return SyncStatus(SyncStatusOptions.model_validate(options), CATALOG)


def test_escalation_since_creation() -> None:
    """Open for days and hours, since creation at a dated moment."""
    [action] = escalate().evaluate([incident(age=ODD)], EvaluationContext(NOW, CATALOG))
    assert action.reason == (
        "open for 51d 3h (since creation at 3 Oct 08:28 UTC); step 1 (after 2h): "
        "severity Minor -> Major"
    )


def test_status_moves_give_idle_and_age_in_plain_spans() -> None:
    """sync_status says 'idle for 51d 3h (>= 7d)' and 'open for 2h 5m (>= 2h)'."""
    idle = incident(status="Documenting", idle=ODD, age=ODD)
    young = incident(status="Documenting", age=timedelta(hours=2, minutes=5, seconds=9))
    [by_idle] = sync({"idle_for": "7d"}).evaluate([idle], EvaluationContext(NOW, CATALOG))
    [by_age] = sync({"age": "2h"}).evaluate([young], EvaluationContext(NOW, CATALOG))
    assert by_idle.reason == "Documenting -> Closed: idle for 51d 3h (>= 7d)"
    assert by_age.reason == "Documenting -> Closed: open for 2h 5m (>= 2h)"
