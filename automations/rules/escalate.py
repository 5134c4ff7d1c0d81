"""escalate_severity: raise the severity of incidents that stay live too long.

A ladder of steps (``after``, ``to``). Age is measured from ``since``: the
creation time, when the incident last entered a live status (``live``), when
its severity last changed (``severity``; both from its updates, see
anchors.py), or a named incident timestamp ("Impact started"). Only the
highest due step is planned, it never lowers a severity, and each target is
applied at most once per incident: if a human lowers it again, we leave it.

The ladder must be able to climb: every severity a step starts from (the
target of the step before) has to be in the rule's own query, or an incident
raised by one step drops out of the query and the next step never fires. That
is refused at start-up, with the way to write it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from automations.anchors import Anchor
from automations.catalog import Catalog, rank_order, resolve_name
from automations.durations import Duration, format_duration
from automations.errors import ConfigError, Problems
from automations.incidentio import (
    Incident,
    IncidentEdit,
    IncidentFilter,
    Severity,
)
from automations.matching import IncidentMatcher
from automations.rules.base import EvaluationContext, PlannedAction, Rule, RuleOptions
from automations.rules.since import SINCE_DESCRIPTION, Since
from automations.text import NAME_LIMIT, one_line
from automations.where import Where

SEVERITY_KEYS = ("severity", "severity_at_least", "severity_at_most")


class Step(BaseModel):
    """After this long, raise the severity to ``to``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    after: Duration = Field(description="Age at which this step applies, e.g. 2h.")
    to: str = Field(description="Severity name to raise to, e.g. Major.")


class EscalateSeverityOptions(RuleOptions):
    """Options of escalate_severity."""

    type: Literal["escalate_severity"]
    since: str = Field("created", description=SINCE_DESCRIPTION)
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
            if target.rank is None:
                problems.add(
                    f"steps[{index}].to: severity {target.name!r} has no rank in the "
                    "organisation's catalog, so whether a step raises the severity cannot be "
                    "told; give it a rank in incident.io's severity settings"
                )
                continue
            if self.targets and target.rank <= self.rank(self.targets[-1]):
                problems.add(
                    f"steps[{index}].to: {target.name!r} is not more severe than "
                    f"{self.targets[-1].name!r}; each step must raise the severity"
                )
            self.targets.append(target)
        self.since = Since(self.options.since, catalog, problems)
        with problems.collect():
            self._filter = self.options.where.to_filter(catalog)
        if not problems.lines:  # the ladder is judged on resolved names only
            with problems.collect():
                self._check_ladder_climbs(catalog)
        problems.raise_if_any()

    @staticmethod
    def rank(target: Severity) -> int:
        """A step target's rank: check() refused targets without one."""
        assert target.rank is not None
        return target.rank

    def _check_ladder_climbs(self, catalog: Catalog) -> None:
        """Refuse a ladder whose later steps start from a severity the query leaves out."""
        where = self.options.where
        for key in SEVERITY_KEYS:
            if not getattr(where, key):
                continue
            alone = IncidentMatcher(Where(**{key: getattr(where, key)}).to_filter(catalog), catalog)
            stranded = [
                index
                for index, source in enumerate(self.targets[:-1])
                if not alone.admits_severity(source)
            ]
            if stranded:
                raise ConfigError(self._stranded_message(key, stranded, catalog))

    def _stranded_message(self, key: str, stranded: list[int], catalog: Catalog) -> str:
        where, steps = self.options.where, self.options.steps
        first = stranded[0]
        source, step = self.targets[first], steps[first + 1]
        sources = [self.targets[i] for i in stranded]
        written = getattr(where, key)
        if key == "severity":
            listed = [catalog.severity(name) for name in where.severity]
            needed = sorted({*listed, *sources}, key=rank_order)
            names = ", ".join(f'"{s.name}"' for s in needed)
            fix = f'severity = [{names}] (or severity_at_most = "{sources[-1].name}")'
            shown = "[" + ", ".join(f'"{name}"' for name in written) + "]"
        elif key == "severity_at_most":
            fix = f'severity_at_most = "{sources[-1].name}"'
            shown = f'"{written}"'
        else:
            fix = f'severity_at_least = "{sources[0].name}"'
            shown = f'"{written}"'
        return (
            f"where.{key}: the ladder cannot climb: step {first + 2} "
            f"({format_duration(step.after)} -> {step.to}) starts from {source.name}, which "
            f"step {first + 1} sets, but {key} = {shown} leaves {source.name} incidents out of "
            f"the rule's query, so step {first + 2} would never fire. List every severity a "
            f"step starts from: {fix}; or split the ladder into one rule per starting severity"
        )

    def query(self) -> IncidentFilter:
        where = self.options.where
        if not where.status_category and not where.status:
            # "stayed live too long": without a status filter, only live incidents.
            return self._filter.status_category(one_of=["live"])
        return self._filter

    def needs_updates(self, incident: Incident, now: datetime) -> bool:
        """Only with ``since = "live"`` or ``"severity"``, and only for an incident that could
        be due: the anchor is never before creation, so one too young since creation (or
        already at the highest target it could reach) is judged without its updates."""
        if not self.since.from_updates or not self._in_scope(incident):
            return False
        return self._step_to_apply(incident, now - incident.created_at) is not None

    def evaluate(
        self, incidents: Sequence[Incident], ctx: EvaluationContext
    ) -> list[PlannedAction]:
        """An incident without updates in ``ctx`` is judged as if it had none, which cannot
        make it due (``needs_updates`` names every one that could be)."""
        actions = []
        for incident in incidents:
            if not self._in_scope(incident):
                continue
            anchor = self.since.anchor(incident, ctx.updates_of(incident.id))
            if anchor is None:
                continue
            index = self._step_to_apply(incident, ctx.now - anchor.at)
            if index is not None:
                actions.append(self._action(incident, index, anchor, ctx.now))
        return actions

    def _in_scope(self, incident: Incident) -> bool:
        if not self.options.where.admits_mode(incident.mode):
            return False
        return self.since.admits(incident)

    def _step_to_apply(self, incident: Incident, age: timedelta) -> int | None:
        """The highest step due at ``age``, unless the incident is already at least as severe.

        Ranks come from the catalog, by severity ID. A severity the catalog cannot rank
        still returns the step: ``_action`` turns it into a refused action, so the
        refusal shows (skipped, with its reason) instead of passing silently.
        """
        due = [i for i, step in enumerate(self.options.steps) if age >= step.after]
        if not due:
            return None
        current = incident.severity
        if current is None:
            return due[-1]
        rank = self.catalog.severity_rank(current.id)
        if rank is not None and rank >= self.rank(self.targets[due[-1]]):
            return None  # never lower, never re-apply
        return due[-1]

    def _unknown_rank(self, current: Severity, target: Severity) -> str | None:
        """Why raising ``current`` to ``target`` is refused, or None when its rank is known."""
        known = self.catalog.severity_by_id(current.id)
        if known is not None and known.rank is not None:
            return None
        why = (
            "is not in the organisation's catalog (loaded at start-up; a restart or reload "
            "refreshes it)"
            if known is None
            else "has no rank in the organisation's catalog"
        )
        return (
            f"refused: severity {one_line(current.name, NAME_LIMIT)!r} ({one_line(current.id)}) "
            f"{why}, so raising it to {one_line(target.name)} could lower it; a severity is "
            "never lowered"
        )

    def _action(
        self, incident: Incident, index: int, anchor: Anchor, now: datetime
    ) -> PlannedAction:
        step = self.options.steps[index]
        target = self.targets[index]
        current = one_line(incident.severity.name) if incident.severity else "no severity"
        reason = (
            f"{self.since.describe(incident, anchor, now)}; step {index + 1} "
            f"(after {format_duration(step.after)}): severity {current} -> "
            f"{one_line(target.name)}"
        )
        refused = (
            None if incident.severity is None else self._unknown_rank(incident.severity, target)
        )
        return self.action(
            incident,
            f"severity-{target.id}",
            reason,
            edit=IncidentEdit(severity_id=target.id),
            kind="escalate",
            details={"from": current, "to": one_line(target.name), "step": index + 1},
            refused=refused,
        )
