"""Rules: the plugin API v1 a rule type is written against, and the built-in rule types.

A third-party rule type imports what it needs from here and nowhere else:
``__all__`` is the API (tests/test_plugin_api.py guards it), and
``PLUGIN_API_VERSION`` changes only when a name here changes incompatibly.
See examples/default_team and the README's "Writing a rule type".
"""

from automations.catalog import Catalog
from automations.durations import Duration, format_duration, human_span
from automations.errors import ConfigError, UnknownName, config_key
from automations.incidentio import FollowUp, Incident, IncidentEdit, IncidentUpdate
from automations.rules.base import (
    PLUGIN_API_VERSION,
    AnyRule,
    Effect,
    EvaluationContext,
    LedgerView,
    PlannedAction,
    Rule,
    RuleOptions,
)

__all__ = [
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
]
