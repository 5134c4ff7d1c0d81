"""notice: tell channels when an incident has matched ``where`` for longer than ``after``.

It changes nothing on the incident: its actions only notify ("Critical and live
for 1h", "live with no lead for 15m"). The age counts from ``since`` (the same
anchors as escalation: rules/since.py). One announcement per stretch: the key
carries the anchor's moment, so an incident that leaves the condition and comes
back (re-enters live, changes severity) is announced again, and nothing is
announced twice for one stretch. ``repeat_every`` re-announces while the
condition holds: the n-th repeat has its own key, so a restart neither skips
nor doubles one (a repeat missed while the daemon was down is not sent late;
the latest due one is).

[[rules]]
name = "critical-live-1h"
type = "notice"
every = "1m"
where = { severity = ["Critical"], status_category = ["live"] }
since = "severity"
after = "1h"
channels = ["leadership", "ops-hook"]
repeat_every = "2h"          # off by default
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from automations.catalog import Catalog
from automations.durations import Duration, format_duration
from automations.errors import Problems
from automations.incidentio import Incident, IncidentFilter
from automations.rules.base import (
    EvaluationContext,
    PlannedAction,
    Rule,
    RuleOptions,
    check_channel_names,
)
from automations.rules.since import SINCE_DESCRIPTION, Since
from automations.text import REASON_LIMIT, one_line


class NoticeOptions(RuleOptions):
    """Options of notice."""

    type: Literal["notice"]
    after: Duration = Field(description="How long the incident must have matched, e.g. 1h.")
    since: str = Field("created", description=SINCE_DESCRIPTION)
    channels: tuple[str, ...] = Field(
        min_length=1, description="Channels (names from [[channels]]) to announce it to."
    )
    repeat_every: Duration | None = Field(
        None, description="Announce again this often while the condition holds (off by default)."
    )
    message: str | None = Field(
        None,
        max_length=REASON_LIMIT,
        description="What the notice says before the age, e.g. 'Critical and live'; "
        "the rule's name by default.",
    )

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        return check_channel_names(names)

    @field_validator("repeat_every")
    @classmethod
    def _repeat_positive(cls, value: Duration | None) -> Duration | None:
        if value is not None and value.total_seconds() <= 0:
            raise ValueError("repeat_every must be longer than 0, or left out")
        return value


class NoticeRule(Rule[NoticeOptions]):
    """Announce incidents that match for too long; never edit them."""

    type_name = "notice"
    options_model = NoticeOptions
    summary = "Tell channels when an incident has matched `where` for longer than `after`."

    def check(self, catalog: Catalog) -> None:
        problems = Problems()
        self.since = Since(self.options.since, catalog, problems)
        with problems.collect():
            self._filter = self.options.where.to_filter(catalog)
        problems.raise_if_any()

    @property
    def channels(self) -> tuple[str, ...]:
        """Its own ``channels``, then any extra ``notify`` ones."""
        extra = tuple(name for name in self.options.notify if name not in self.options.channels)
        return self.options.channels + extra

    def query(self) -> IncidentFilter:
        return self._filter

    def needs_updates(self, incident: Incident, now: datetime) -> bool:
        """Only for ``since = "live" | "severity"``, and only once the incident is old enough
        to be due at all (an anchor is never before creation)."""
        return (
            self.since.from_updates
            and self._in_scope(incident)
            and now - incident.created_at >= self.options.after
        )

    def _in_scope(self, incident: Incident) -> bool:
        return self.options.where.admits_mode(incident.mode) and self.since.admits(incident)

    def evaluate(
        self, incidents: Sequence[Incident], ctx: EvaluationContext
    ) -> list[PlannedAction]:
        actions = []
        for incident in incidents:
            if not self._in_scope(incident):
                continue
            anchor = self.since.anchor(incident, ctx.updates_of(incident.id))
            if anchor is None or ctx.now - anchor.at < self.options.after:
                continue
            repeat = self._repeat(ctx.now - anchor.at)
            step = f"notice-{int(anchor.at.timestamp())}" + (f"-r{repeat}" if repeat else "")
            what = one_line(self.options.message or self.name)
            reason = f"{what}: {self.since.describe(incident, anchor, ctx.now)}"
            if repeat:
                reason += f"; reminder {repeat} (every {format_duration(self._every())})"
            details = {"since": anchor.at.isoformat(), "repeat": repeat}
            actions.append(self.action(incident, step, reason, kind="notice", details=details))
        return actions

    def _every(self) -> Duration:
        assert self.options.repeat_every is not None
        return self.options.repeat_every

    def _repeat(self, age: Duration) -> int:
        """Which announcement of this stretch is due: 0 the first, n the n-th reminder."""
        if self.options.repeat_every is None:
            return 0
        return int((age - self.options.after) / self.options.repeat_every)
