"""Plugin API v1: the names a third-party rule type may rely on stay put."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import automations.rules
from automations.incidentio import IncidentEdit
from automations.rules import PLUGIN_API_VERSION, EvaluationContext, PlannedAction
from automations.rules.escalate import EscalateSeverity, EscalateSeverityOptions
from tests.factories import CATALOG, NOW, incident

ROOT = Path(__file__).resolve().parent.parent
V1 = {
    "PLUGIN_API_VERSION",
    "AnyRule",
    "Catalog",
    "ConfigError",
    "Duration",
    "Effect",
    "EvaluationContext",
    "FollowUp",
    "Incident",
    "IncidentEdit",
    "IncidentUpdate",
    "LedgerView",
    "PlannedAction",
    "Rule",
    "RuleOptions",
    "UnknownName",
    "config_key",
    "format_duration",
    "human_span",
}


def test_all_is_the_v1_surface() -> None:
    """Removing or renaming a name breaks plugins: it needs PLUGIN_API_VERSION 2."""
    assert PLUGIN_API_VERSION == 1
    assert set(automations.rules.__all__) == V1
    for name in automations.rules.__all__:
        assert getattr(automations.rules, name) is not None


def test_the_example_plugin_imports_only_the_public_api() -> None:
    """examples/default_team is written against automations.rules alone."""
    tree = ast.parse((ROOT / "examples" / "default_team" / "default_team.py").read_text())
    imported = [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("automations")
        for alias in node.names
    ]
    assert imported
    assert {module for module, _ in imported} == {"automations.rules"}
    assert {name for _, name in imported} <= V1


def escalate() -> EscalateSeverity:
    options = EscalateSeverityOptions.model_validate(
        {
            "type": "escalate_severity",
            "name": "esc",
            "every": "1m",
            "steps": [{"after": "2h", "to": "Major"}],
            "notify": ["ops"],
            "announce": "Raised: {{ reason }}",
        }
    )
    return EscalateSeverity(options, CATALOG)


def test_rule_action_owns_the_key_prefix_and_the_notify_spec() -> None:
    """Rule.action keys '<rule>/<incident>/<step>' and carries notify and the rendered announce."""
    rule, item = escalate(), incident()
    action = rule.action(item, "custom-step", "because", edit=IncidentEdit(severity_id="SEV2"))
    assert action.event_key == f"esc/{item.id}/custom-step"
    assert action.effect == "edit"
    assert action.notify == ("ops",)
    assert action.announce == "Raised: because"
    notice = rule.action(item, "heads-up", "just saying")
    assert notice.effect == "notify"
    assert notice.request_body() == {}


def test_a_step_with_a_slash_is_refused() -> None:
    """A step cannot reach into another rule's or incident's keys."""
    rule, item = escalate(), incident()
    with pytest.raises(ValueError, match="without '/'"):
        rule.action(item, "x/../y", "no")


def test_evaluate_takes_one_context() -> None:
    """Built-ins judge by ctx.now: the same incident is due later, not now."""
    from datetime import timedelta

    rule = escalate()
    item = incident(age=timedelta(hours=1))
    assert rule.evaluate([item], EvaluationContext(NOW, CATALOG)) == []
    later = rule.evaluate([item], EvaluationContext(NOW + timedelta(hours=2), CATALOG))
    assert [type(a) for a in later] == [PlannedAction]
    assert later[0].announce is not None
    assert later[0].announce.startswith("Raised: open for 3h")
