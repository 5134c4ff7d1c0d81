"""escalate_severity: raise the severity of incidents that stay live too long.

A ladder of steps (``after``, ``to``). Age is measured from ``since``: the
creation time or a named incident timestamp ("Impact started"). Only the
highest due step is planned, it never lowers a severity, and each target is
applied at most once per incident: if a human lowers it again, we leave it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from automations.catalog import Catalog, UnknownName, resolve_name
from automations.durations import Duration, format_duration
from automations.errors import Problems
from automations.incidentio import (
    FollowUp,
    Incident,
    IncidentEdit,
    IncidentFilter,
    Severity,
)
from automations.rules.base import PlannedAction, Rule, RuleOptions

DEFAULT_MODES = ("standard", "retrospective")


class Step(BaseModel):
    """After this long, raise the severity to ``to``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    after: Duration = Field(description="Age at which this step applies, e.g. 2h.")
    to: str = Field(description="Severity name to raise to, e.g. Major.")


class EscalateSeverityOptions(RuleOptions):
    """Options of escalate_severity."""

    type: Literal["escalate_severity"]
    since: str = Field(
        "created",
        description='"created", or the name of an incident timestamp such as "Impact started".',
    )
    steps: tuple[Step, ...] = Field(min_length=1, description="The ladder, in increasing `after`.")

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: tuple[Step, ...]) -> tuple[Step, ...]:
        for earlier, later in pairwise(steps):
            if later.after <= earlier.after:
                raise ValueError(
                    f"steps must be in increasing `after` order ({format_duration(later.after)} "
                    f"comes after {format_duration(earlier.after)})"
                )
        return steps


class EscalateSeverity(Rule[EscalateSeverityOptions]):
    """Raise severity along a ladder of ages."""

    type_name = "escalate_severity"
    options_model = EscalateSeverityOptions
    summary = "Raise the severity of incidents that stay live too long, step by step."

    def check(self, catalog: Catalog) -> None:
        problems = Problems()  # every problem of the rule, not just the first
        self.targets: list[Severity] = []
        for index, step in enumerate(self.options.steps):
            target = resolve_name(catalog.severity, step.to, f"steps[{index}].to", problems)
            if target is None:
                continue
            if self.targets and target.rank <= self.targets[-1].rank:
                problems.add(
                    f"steps[{index}].to: {target.name!r} is not more severe than "
                    f"{self.targets[-1].name!r}; each step must raise the severity"
                )
            self.targets.append(target)
        self.since_id: str | None = None
        if self.options.since != "created":
            try:
                self.since_id = catalog.timestamp(self.options.since).id
            except UnknownName as exc:
                problems.add(
                    UnknownName(
                        "incident timestamp (or 'created')",
                        exc.value,
                        [*exc.valid, "created"],
                        "since",
                    )
                )
        with problems.collect():
            self._filter = self.options.where.to_filter(catalog)
        problems.raise_if_any()

    def query(self) -> IncidentFilter:
        where = self.options.where
        if not where.status_category and not where.status:
            # "stayed live too long": without a status filter, only live incidents.
            return self._filter.status_category(one_of=["live"])
        return self._filter

    def evaluate(
        self,
        incidents: Sequence[Incident],
        now: datetime,
        catalog: Catalog,
        follow_ups: Mapping[str, Sequence[FollowUp]] | None = None,
    ) -> list[PlannedAction]:
        modes = self.options.where.mode or DEFAULT_MODES
        actions = []
        for incident in incidents:
            if incident.mode not in modes:
                continue
            start = self._start(incident)
            if start is None:
                continue
            age = now - start
            due = [i for i, step in enumerate(self.options.steps) if age >= step.after]
            if not due:
                continue
            index = due[-1]
            target = self.targets[index]
            current = incident.severity
            if current is not None and current.rank >= target.rank:
                continue  # never lower, never re-apply
            actions.append(self._action(incident, index, target, age))
        return actions

    def _start(self, incident: Incident) -> datetime | None:
        if self.since_id is None:
            return incident.created_at
        return incident.timestamp_value(self.since_id)

    def _action(
        self, incident: Incident, index: int, target: Severity, age: timedelta
    ) -> PlannedAction:
        step = self.options.steps[index]
        current = incident.severity.name if incident.severity else "no severity"
        since = "creation" if self.since_id is None else repr(self.options.since)
        reason = (
            f"{incident.incident_status.name.lower()} for {format_duration(age)} since {since} "
            f"(step {index + 1}: after {format_duration(step.after)}); "
            f"severity {current} -> {target.name}"
        )
        return PlannedAction(
            rule=self.name,
            incident_id=incident.id,
            incident_reference=incident.reference,
            incident_name=incident.name,
            event_key=f"{self.name}/{incident.id}/severity-{target.id}",
            reason=reason,
            edit=IncidentEdit(severity_id=target.id),
            notify_incident_channel=self.options.notify_incident_channel,
            kind="escalate",
            details={"from": current, "to": target.name, "step": index + 1},
        )
