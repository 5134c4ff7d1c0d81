"""sync_status: move incidents between statuses, or mirror the status category into a field.

Transitions (``to_status``) happen when every ``require`` condition holds. A
target the API would refuse for the source category (docs/incident-io-api.md
section 9) is a config error at start-up, not a 422 at 3am. Mirroring
(``mirror``) keeps a single-select custom field equal to the status category
and edits only when it differs, at most once per change of category: the event
key names the change (the incident update that moved it into the category,
see ``anchors.category_period``). So an incident that goes live -> learning ->
live gets its field set back, while a human who sets the field by hand after
the rule acted on a change is not fought: the rule acts again only on the
incident's next change of category.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from automations.anchors import category_period
from automations.catalog import Catalog, resolve_name
from automations.durations import Duration, format_duration, human_moment, human_span
from automations.errors import ConfigError, Problems, UnknownName, config_key
from automations.incidentio import (
    CustomField,
    CustomFieldOption,
    FollowUp,
    Incident,
    IncidentEdit,
    IncidentStatus,
    IncidentUpdate,
)
from automations.rules.base import EvaluationContext, PlannedAction, Rule, RuleOptions
from automations.text import one_line
from automations.where import StatusCategoryName

# The app's labels for categories, tried when no option is named like the category.
APP_LABELS = {"live": "Active", "learning": "Post-incident"}


def transition_allowed(source: str, target: str) -> bool:
    """What POST /actions/edit accepts (docs/incident-io-api.md section 9)."""
    if target in ("triage", "declined", "merged", "canceled", "paused"):
        return False
    if source in ("closed", "declined", "merged", "canceled"):
        return False
    if source == target:
        return True
    if source in ("triage", "live"):
        return target in ("learning", "closed")
    return source == "learning" and target == "closed"


class Require(BaseModel):
    """Conditions checked on each incident before a transition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    idle_for: Duration | None = Field(None, description="No update (updated_at) for this long.")
    age: Duration | None = Field(None, description="Created at least this long ago.")
    postmortem: Literal["present", "absent"] | None = Field(
        None, description="A postmortem document is linked (present) or not (absent)."
    )
    role: dict[str, Literal["assigned", "unassigned"]] = Field(
        default_factory=dict, description='Role name -> "assigned" | "unassigned".'
    )
    custom_field: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="Custom field name -> any of these option names."
    )
    follow_ups: Literal["completed"] | None = Field(
        None,
        description='"completed": every follow-up is completed or not doing; deleted ones do '
        "not count, and an incident without follow-ups qualifies.",
    )


class Mirror(BaseModel):
    """Which single-select field mirrors the status category, and its option per category."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(description='Single-select custom field name, e.g. "Phase".')
    options: dict[StatusCategoryName, str] = Field(
        default_factory=dict,
        description="Category -> option name. Unlisted categories use the option named like the "
        "category (or the app's label: Active, Post-incident); without one they are left alone.",
    )


class SyncStatusOptions(RuleOptions):
    """Options of sync_status: exactly one of to_status or mirror."""

    type: Literal["sync_status"]
    to_status: str | None = Field(None, description='Status name to move to, e.g. "Closed".')
    require: Require = Field(default_factory=Require, description="Conditions for to_status.")
    mirror: Mirror | None = Field(None, description="Mirror the status category into a field.")

    @model_validator(mode="after")
    def _one_mode(self) -> SyncStatusOptions:
        if (self.to_status is None) == (self.mirror is None):
            raise ValueError("give exactly one of to_status or mirror")
        if self.mirror is not None and self.require != Require():
            raise ValueError("require only applies to to_status, not mirror")
        return self


class SyncStatus(Rule[SyncStatusOptions]):
    """Move incidents to a status when conditions hold, or mirror the category into a field."""

    type_name = "sync_status"
    options_model = SyncStatusOptions
    summary = "Move incidents to another status when conditions hold, or mirror the category."

    def check(self, catalog: Catalog) -> None:
        opts = self.options
        problems = Problems()  # every problem of the rule, not just the first
        with problems.collect():
            self._filter = opts.where.to_filter(catalog)
        self.target: IncidentStatus | None = None
        self.mirror_field: CustomField | None = None
        self.mirror_options: dict[str, CustomFieldOption] = {}
        if opts.to_status is not None:
            with problems.collect():
                self._check_transition(catalog, opts.to_status)
            with problems.collect():
                self._resolve_require(catalog)
        elif opts.mirror is not None:
            with problems.collect():
                self._resolve_mirror(catalog, opts.mirror)
        problems.raise_if_any()

    def _check_transition(self, catalog: Catalog, to_status: str) -> None:
        with config_key("to_status"):
            self.target = catalog.status(to_status)
        where = self.options.where
        known = Problems()  # an unknown where.status is reported by where itself
        statuses = (resolve_name(catalog.status, s, "", known) for s in where.status)
        sources = set(where.status_category) | {s.category for s in statuses if s is not None}
        if not sources:
            raise ConfigError(
                "where.status_category: is required with to_status, so the move can be checked "
                'against what the API allows (e.g. status_category = ["learning"])'
            )
        target = self.target
        for source in sorted(sources):
            if not transition_allowed(source, target.category):
                raise ConfigError(
                    f"to_status: the API refuses moving {source} incidents to {target.name!r} "
                    f"({target.category}); it allows the same category, triage/live -> "
                    "learning/closed, and learning -> closed"
                )

    def _resolve_require(self, catalog: Catalog) -> None:
        req = self.options.require
        problems = Problems()
        self.require_roles = {}
        for name, state in req.role.items():
            if (role := resolve_name(catalog.role, name, "require.role", problems)) is not None:
                self.require_roles[role.id] = state
        self.require_fields: dict[str, set[str]] = {}
        for name, values in req.custom_field.items():
            field_ = resolve_name(catalog.custom_field, name, "require.custom_field", problems)
            if field_ is None:
                continue
            ids = set()
            for index, value in enumerate(values):
                path = f"require.custom_field.{name}[{index}]"
                option = resolve_name(partial(catalog.option, field_), value, path, problems)
                if option is not None:
                    ids.add(option.id)
            self.require_fields[field_.id] = ids
        problems.raise_if_any()

    def _resolve_mirror(self, catalog: Catalog, mirror: Mirror) -> None:
        with config_key("mirror.field"):
            field_ = catalog.custom_field(mirror.field)
        if field_.field_type != "single_select":
            raise ConfigError(
                f"mirror.field: {field_.name!r} is a {field_.field_type} field; "
                "mirroring needs a single_select field"
            )
        self.mirror_field = field_
        problems = Problems()
        for category, option_name in mirror.options.items():
            path = f"mirror.options.{category}"
            option = resolve_name(partial(catalog.option, field_), option_name, path, problems)
            if option is not None:
                self.mirror_options[category] = option
        problems.raise_if_any()
        for category in StatusCategoryName.__args__:  # type: ignore[attr-defined]
            if category in self.mirror_options:
                continue
            for candidate in (category, APP_LABELS.get(category)):
                if candidate is None:
                    continue
                try:
                    self.mirror_options[category] = catalog.option(field_, candidate)
                    break
                except UnknownName:
                    continue

    @property
    def needs_follow_ups(self) -> bool:
        return self.options.require.follow_ups is not None

    def needs_updates(self, incident: Incident, now: datetime) -> bool:
        """A mirror needs them to name the change of category it acts on, and only for an
        incident whose field differs from its category's option (one request each)."""
        return self._in_scope(incident) and self._mirror_option(incident) is not None

    def _in_scope(self, incident: Incident) -> bool:
        return self.options.where.admits_mode(incident.mode)

    def evaluate(
        self, incidents: Sequence[Incident], ctx: EvaluationContext
    ) -> list[PlannedAction]:
        actions: list[PlannedAction] = []
        for incident in incidents:
            if not self._in_scope(incident):
                continue
            if self.target is not None:
                action = self._transition(incident, ctx.now, ctx.follow_ups)
            else:
                action = self._mirror(incident, ctx.updates_of(incident.id), ctx.now)
            if action is not None:
                actions.append(action)
        return actions

    def _transition(
        self,
        incident: Incident,
        now: datetime,
        follow_ups: Mapping[str, Sequence[FollowUp]] | None,
    ) -> PlannedAction | None:
        target = self.target
        assert target is not None
        if incident.incident_status.id == target.id:
            return None
        if not transition_allowed(incident.incident_status.category, target.category):
            return None
        reasons = self._unmet_or_reasons(incident, now, follow_ups)
        if reasons is None:
            return None
        move = f"{one_line(incident.incident_status.name)} -> {one_line(target.name)}"
        reason = f"{move}: " + ", ".join(reasons) if reasons else move
        return self.action(
            incident,
            f"status-{target.id}",
            reason,
            edit=IncidentEdit(incident_status_id=target.id),
            kind="status",
            details={"from": one_line(incident.incident_status.name), "to": one_line(target.name)},
        )

    def _unmet_or_reasons(
        self,
        incident: Incident,
        now: datetime,
        follow_ups: Mapping[str, Sequence[FollowUp]] | None,
    ) -> list[str] | None:
        """The reasons each condition holds, or None as soon as one does not."""
        req = self.options.require
        reasons: list[str] = []
        if req.idle_for is not None:
            idle = now - incident.updated_at
            if idle < req.idle_for:
                return None
            reasons.append(f"idle for {human_span(idle)} (>= {format_duration(req.idle_for)})")
        if req.age is not None:
            age = now - incident.created_at
            if age < req.age:
                return None
            reasons.append(f"open for {human_span(age)} (>= {format_duration(req.age)})")
        if req.postmortem is not None:
            present = bool(incident.postmortem_document_url)
            if present != (req.postmortem == "present"):
                return None
            reasons.append(f"postmortem {req.postmortem}")
        for role_id, state in self.require_roles.items():
            assigned = incident.role_assignee(role_id) is not None
            if assigned != (state == "assigned"):
                return None
            reasons.append(f"{one_line(self.catalog_role_name(role_id))} {state}")
        for field_id, option_ids in self.require_fields.items():
            if not option_ids & set(incident.custom_field_option_ids(field_id)):
                return None
        if req.follow_ups == "completed":
            # Deleted follow-ups are gone, neither open nor done; a status the API adds
            # later is not done (FollowUp.is_done), so it holds the incident open.
            items = [f for f in (follow_ups or {}).get(incident.id, ()) if not f.is_deleted]
            if not all(f.is_done for f in items):
                return None
            reasons.append(f"all {len(items)} follow-ups done" if items else "no follow-ups")
        return reasons

    def catalog_role_name(self, role_id: str) -> str:
        return next((r.name for r in self.catalog.roles if r.id == role_id), role_id)

    def _mirror_option(self, incident: Incident) -> CustomFieldOption | None:
        """The option the field should be set to, or None when it already is (or has none)."""
        if self.mirror_field is None:
            return None
        option = self.mirror_options.get(incident.incident_status.category)
        if option is None or incident.custom_field_option_ids(self.mirror_field.id) == (option.id,):
            return None
        return option

    def _mirror(
        self, incident: Incident, updates: Sequence[IncidentUpdate], now: datetime
    ) -> PlannedAction | None:
        field_ = self.mirror_field
        assert field_ is not None
        option = self._mirror_option(incident)
        if option is None:
            return None
        category = incident.incident_status.category
        period = category_period(incident, updates)
        # One key per change of category; the stretch the updates begin in keeps the key
        # earlier versions used for every stretch, so their ledgers stay honoured.
        step = f"mirror-{category}" + (f"-{period.token}" if period.token else "")
        since = "" if period.began is None else f" since {human_moment(period.began.at, now)}"
        field_name, value = one_line(field_.name), one_line(option.value)
        return self.action(
            incident,
            step,
            f"status category is {category}{since}; {field_name} set to {value!r}",
            edit=IncidentEdit(
                custom_field_entries=[
                    {"custom_field_id": field_.id, "values": [{"value_option_id": option.id}]}
                ]
            ),
            kind="mirror",
            details={"field": field_name, "to": value},
        )
