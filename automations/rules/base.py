"""What a rule is: an options model, a server-side query, and a pure evaluation.

A rule type is a class registered under the ``automations.rules`` entry-point
group (the built-ins register the same way as third-party rules). The engine
does the I/O; a rule only turns incidents into planned actions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from automations.catalog import Catalog
from automations.durations import Duration
from automations.incidentio import (
    FollowUp,
    Incident,
    IncidentEdit,
    IncidentFilter,
    IncidentUpdate,
)
from automations.schedules import CronExpression, TimeZoneName
from automations.where import Where


class RuleOptions(BaseModel):
    """Keys every rule has; a rule type subclasses this with its own options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(
        description="The rule type, e.g. escalate_severity (see `automations rules`)."
    )
    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        max_length=64,
        description="Unique name: lowercase letters, digits, '-' and '_'. Part of every event key.",
    )
    enabled: StrictBool = Field(
        True, description="Set false to keep a rule in the file but not run it."
    )
    every: Duration | None = Field(None, description="Run on an interval, e.g. 1m.")
    cron: CronExpression | None = Field(
        None, description="Run on a cron schedule instead, e.g. '*/5 * * * *'."
    )
    timezone: TimeZoneName | None = Field(
        None, description="IANA timezone for cron, e.g. Europe/London."
    )
    where: Where = Field(default_factory=Where, description="Server-side incident filters.")
    notify_incident_channel: StrictBool = Field(
        False,
        description="Whether incident.io announces this rule's edits in the incident channel.",
    )
    max_actions_per_cycle: StrictInt = Field(
        10, ge=1, description="Safety brake: past this many edits in one cycle the rule stops."
    )

    @model_validator(mode="after")
    def _one_schedule(self) -> RuleOptions:
        if (self.every is None) == (self.cron is None):
            raise ValueError('give exactly one of every (e.g. every = "1m") or cron')
        if self.cron is not None and self.timezone is None:
            raise ValueError('cron needs a timezone, e.g. timezone = "Europe/London"')
        if self.every is not None and self.timezone is not None:
            raise ValueError("timezone only applies to cron schedules")
        return self


OptionsT = TypeVar("OptionsT", bound=RuleOptions)


@dataclass(frozen=True)
class PlannedAction:
    """One edit a rule wants, with the key that makes it happen at most once."""

    rule: str
    incident_id: str
    incident_reference: str
    incident_name: str
    event_key: str
    reason: str
    edit: IncidentEdit
    notify_incident_channel: bool
    kind: str = "edit"
    details: Mapping[str, Any] = field(default_factory=dict)

    def request_body(self) -> dict[str, Any]:
        """The exact body POSTed to /v2/incidents/{id}/actions/edit."""
        return {
            "incident": self.edit.model_dump(mode="json", exclude_unset=True),
            "notify_incident_channel": self.notify_incident_channel,
        }


class Rule(ABC, Generic[OptionsT]):
    """A configured rule with its names resolved against the catalog."""

    type_name: ClassVar[str]
    options_model: ClassVar[type[RuleOptions]]
    summary: ClassVar[str]

    def __init__(self, options: OptionsT, catalog: Catalog) -> None:
        self.options = options
        self.catalog = catalog
        self.check(catalog)

    @property
    def name(self) -> str:
        return self.options.name

    def check(self, catalog: Catalog) -> None:
        """Raise ConfigError for options that names or the API make impossible."""

    def query(self) -> IncidentFilter:
        """The server-side query: identical queries are fetched once per cycle."""
        return self.options.where.to_filter(self.catalog)

    @property
    def needs_follow_ups(self) -> bool:
        return False

    def needs_updates(self, incident: Incident, now: datetime) -> bool:
        """Whether judging ``incident`` at ``now`` needs its incident updates.

        The engine fetches them (one request per incident) only where this is True,
        and passes them as ``updates=`` (incident ID -> updates) to ``evaluate`` and
        ``still_applies``; a rule that overrides this accepts that keyword.
        """
        return False

    @abstractmethod
    def evaluate(
        self,
        incidents: Sequence[Incident],
        now: datetime,
        catalog: Catalog,
        follow_ups: Mapping[str, Sequence[FollowUp]] | None = None,
    ) -> list[PlannedAction]:
        """Pure: no I/O; ``now`` is passed in so runs are replayable.

        Called once per page of the rule's query (and on single incidents for the
        re-check before an edit), so judge each incident on its own.
        """

    def still_applies(
        self,
        action: PlannedAction,
        incident: Incident,
        now: datetime,
        follow_ups: Mapping[str, Sequence[FollowUp]] | None = None,
        updates: Mapping[str, Sequence[IncidentUpdate]] | None = None,
    ) -> str | None:
        """Re-check one action against a fresh read; None if it still applies, else why not."""
        extra = {} if updates is None else {"updates": updates}
        for candidate in self.evaluate([incident], now, self.catalog, follow_ups, **extra):
            if candidate.event_key == action.event_key:
                return None
        return "no longer applies after re-reading the incident"


AnyRule = Rule[Any]
