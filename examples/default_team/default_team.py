"""An example rule type: give incidents nobody has claimed a default owning team.

[[rules]]
name = "unowned-to-platform"
type = "default_team"
every = "5m"
where = { status_category = ["triage", "live"] }
field = "Team"                 # a single-select custom field
team = "Platform"              # the option to set
after = "30m"                  # only once the incident has been open this long
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from automations.rules import (
    Catalog,
    Duration,
    EvaluationContext,
    Incident,
    IncidentEdit,
    PlannedAction,
    Rule,
    RuleOptions,
    config_key,
    human_span,
)


class DefaultTeamOptions(RuleOptions):
    """Options are a pydantic model: the config's errors and `automations schema` come free."""

    type: Literal["default_team"]
    field: str = Field("Team", description="The single-select custom field to fill in.")
    team: str = Field(description="The option to set, e.g. 'Platform'.")
    after: Duration = Field(description="How long an incident may stay without a team.")


class DefaultTeam(Rule[DefaultTeamOptions]):
    type_name = "default_team"
    options_model = DefaultTeamOptions
    summary = "Set a default team on incidents that have none after a while."

    def check(self, catalog: Catalog) -> None:
        """Resolve names once, at start-up; an unknown one stops the daemon with its key path."""
        with config_key("field"):
            self.field = catalog.custom_field(self.options.field)
        with config_key("team"):
            self.team = catalog.option(self.field, self.options.team)

    def evaluate(
        self, incidents: Sequence[Incident], ctx: EvaluationContext
    ) -> list[PlannedAction]:
        """Pure: the engine fetched the incidents (server-side `where`) and owns the clock."""
        actions = []
        for incident in incidents:
            age = ctx.now - incident.created_at
            if incident.custom_field_option_ids(self.field.id) or age < self.options.after:
                continue
            # Rule.action keys it "<rule>/<incident>/team": at most once per incident, ever;
            # the rule's `notify` channels and `announce` message come with it.
            actions.append(
                self.action(
                    incident,
                    "team",
                    f"no {self.field.name} after {human_span(age)}; set to {self.team.value!r}",
                    edit=IncidentEdit(
                        custom_field_entries=[
                            {
                                "custom_field_id": self.field.id,
                                "values": [{"value_option_id": self.team.id}],
                            }
                        ]
                    ),
                    kind="team",
                )
            )
        return actions
