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

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Literal

from pydantic import Field

from automations.catalog import Catalog, UnknownName
from automations.durations import Duration, human_span
from automations.incidentio import FollowUp, Incident, IncidentEdit
from automations.rules.base import PlannedAction, Rule, RuleOptions


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
        try:
            self.field = catalog.custom_field(self.options.field)
        except UnknownName as exc:
            raise exc.at("field") from None
        try:
            self.team = catalog.option(self.field, self.options.team)
        except UnknownName as exc:
            raise exc.at("team") from None

    def evaluate(
        self,
        incidents: Sequence[Incident],
        now: datetime,
        catalog: Catalog,
        follow_ups: Mapping[str, Sequence[FollowUp]] | None = None,
    ) -> list[PlannedAction]:
        """Pure: the engine fetched the incidents (server-side `where`) and owns the clock."""
        actions = []
        for incident in incidents:
            age = now - incident.created_at
            if incident.custom_field_option_ids(self.field.id) or age < self.options.after:
                continue
            actions.append(
                PlannedAction(
                    rule=self.name,
                    incident_id=incident.id,
                    incident_reference=incident.reference,
                    incident_name=incident.name,
                    # The event key makes the edit happen at most once per incident, ever.
                    event_key=f"{self.name}/{incident.id}/team",
                    reason=f"no {self.field.name} after {human_span(age)}; "
                    f"set to {self.team.value!r}",
                    edit=IncidentEdit(
                        custom_field_entries=[
                            {
                                "custom_field_id": self.field.id,
                                "values": [{"value_option_id": self.team.id}],
                            }
                        ]
                    ),
                    notify_incident_channel=self.options.notify_incident_channel,
                )
            )
        return actions
