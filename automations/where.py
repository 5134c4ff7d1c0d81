"""``where = {...}``: which incidents a rule or digest looks at, written with names.

Two parts, and this module is the only one that knows which key is which:

- the server-side part (``Where.to_filter``): query parameters of
  ``GET /v2/incidents``, so the API filters and the daemon pages through only
  what a rule can act on;
- the local part (``Where.local_filter``): what the API cannot filter on
  (``team_ids``: the list endpoint has no team parameter). It is judged here,
  after fetching, by every caller that applies a ``where``: the engine's polling
  and its webhook matching, digests, and ``test-rule``. Its cost: the incidents
  of every team that pass the server-side part are fetched, then dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Annotated, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from automations.catalog import resolve_name
from automations.errors import Problems
from automations.incidentio import Incident, IncidentFilter

if TYPE_CHECKING:
    from automations.catalog import Catalog

StatusCategoryName = Literal[
    "triage", "declined", "merged", "canceled", "live", "learning", "closed", "paused"
]
ModeName = Literal["standard", "retrospective", "test", "tutorial"]
# What the API lists when no mode is asked for: test and tutorial incidents stay out.
DEFAULT_MODES = frozenset({"standard", "retrospective"})


_TEAM_ID = re.compile(r"^[0-9A-Za-z]+$")


def _team_id(value: str) -> str:
    """An incident.io team ID (a ULID such as 01HXYZ...); a team's name is refused, with
    where names are accepted instead, rather than matching nothing forever."""
    if not value.strip():
        raise ValueError('must not be empty: give a team ID, e.g. "01HXYZ..."')
    if not _TEAM_ID.match(value) or not any(char.isdigit() for char in value):
        raise ValueError(
            f'{value!r} is not a team ID (letters and digits, e.g. "01HXYZ...", as in an '
            "incident's team_ids); team names are not accepted here: to filter by the Team "
            'custom field write custom_field = { Team = ["Payments"] }'
        )
    return value


TeamId = Annotated[str, AfterValidator(_team_id)]


@dataclass(frozen=True)
class LocalFilter:
    """The part of a ``where`` judged after fetching, because ``GET /v2/incidents`` cannot.

    Empty (falsy) when the ``where`` has no local key: everything passes.
    """

    team_ids: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.team_ids)

    def __call__(self, incident: Incident) -> bool:
        """Owned by one of the teams (OR-ed, like one_of); AND-ed with the server-side part."""
        return not self.team_ids or not self.team_ids.isdisjoint(incident.team_ids)

    def select(self, incidents: Iterable[Incident]) -> list[Incident]:
        """The incidents that pass, in the order given."""
        return [incident for incident in incidents if self(incident)]

    def key(self) -> str:
        """Stable text for caching and grouping; "" when empty."""
        return ",".join(sorted(self.team_ids))

    def describe(self) -> str | None:
        """One line for plan, validate and digest status; None when empty."""
        if not self:
            return None
        return (
            f"team_ids {', '.join(sorted(self.team_ids))} (filtered locally after fetching: "
            "GET /v2/incidents has no team filter)"
        )


class _Named(Protocol):
    @property
    def id(self) -> str: ...


class Where(BaseModel):
    """Which incidents a rule or digest looks at. Values are names (or IDs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status_category: tuple[StatusCategoryName, ...] = Field(
        (), description="Status categories, e.g. [\"live\"] (the app calls live 'Active')."
    )
    status: tuple[str, ...] = Field((), description='Status names, e.g. ["Investigating"].')
    severity: tuple[str, ...] = Field((), description='Severity names, e.g. ["Minor"].')
    severity_at_least: str | None = Field(None, description="This severity or more severe.")
    severity_at_most: str | None = Field(None, description="This severity or less severe.")
    incident_type: tuple[str, ...] = Field((), description="Incident type names.")
    custom_field: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description='Custom field name -> option names, e.g. { Team = ["Payments"] }.',
    )
    role: dict[str, Literal["assigned", "unassigned"]] = Field(
        default_factory=dict,
        description='Role name -> "assigned" or "unassigned", '
        'e.g. { "Incident Lead" = "unassigned" }.',
    )
    mode: tuple[ModeName, ...] = Field(
        (),
        description="Incident modes. Empty means standard and retrospective: test and "
        "tutorial incidents are never touched unless listed here.",
    )
    team_ids: tuple[TeamId, ...] = Field(
        (),
        description='Team IDs, e.g. ["01HXYZ..."]: incidents owned by any of them (their '
        "team_ids). Filtered locally after fetching, as the API has no team filter.",
    )

    @field_validator("team_ids")
    @classmethod
    def _distinct_teams(cls, team_ids: tuple[str, ...]) -> tuple[str, ...]:
        repeated = sorted({team for team in team_ids if team_ids.count(team) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repeated)} listed twice; list each team once")
        return team_ids

    def admits_mode(self, mode: str) -> bool:
        """The incident's mode is one ``mode`` lists, or standard/retrospective if none is."""
        return mode in (self.mode or DEFAULT_MODES)

    def local_filter(self) -> LocalFilter:
        """What ``to_filter`` cannot send: apply it to every incident fetched with it."""
        return LocalFilter(frozenset(self.team_ids))

    def to_filter(self, catalog: Catalog, path: str = "where") -> IncidentFilter:
        """The server-side part, names resolved to IDs; every unknown name is reported, each
        at its key path. ``team_ids`` is not in it (see ``local_filter``)."""
        problems = Problems()

        def ids(resolve: Callable[[str], _Named], values: tuple[str, ...], key: str) -> list[str]:
            found = (
                resolve_name(resolve, value, f"{path}.{key}[{index}]", problems)
                for index, value in enumerate(values)
            )
            return [item.id for item in found if item is not None]

        query = IncidentFilter()
        if self.status_category:
            query = query.status_category(one_of=list(self.status_category))
        # A list whose names are all unknown adds no filter; the problems are raised below.
        if status_ids := ids(catalog.status, self.status, "status"):
            query = query.status(one_of=status_ids)
        if severity_ids := ids(catalog.severity, self.severity, "severity"):
            query = query.severity(one_of=severity_ids)
        if self.severity_at_least:
            at_least = f"{path}.severity_at_least"
            sev = resolve_name(catalog.severity, self.severity_at_least, at_least, problems)
            query = query if sev is None else query.severity(gte=sev.id)
        if self.severity_at_most:
            at_most = f"{path}.severity_at_most"
            sev = resolve_name(catalog.severity, self.severity_at_most, at_most, problems)
            query = query if sev is None else query.severity(lte=sev.id)
        if type_ids := ids(catalog.incident_type, self.incident_type, "incident_type"):
            query = query.incident_type(one_of=type_ids)
        for name, values in self.custom_field.items():
            field_ = resolve_name(catalog.custom_field, name, f"{path}.custom_field", problems)
            if not values:
                problems.add(f"{path}.custom_field.{name}: needs at least one option name")
            elif field_ is not None:
                options = ids(partial(catalog.option, field_), values, f"custom_field.{name}")
                query = query.custom_field(field_.id, one_of=options) if options else query
        for name, state in self.role.items():
            role = resolve_name(catalog.role, name, f"{path}.role", problems)
            if role is not None:
                query = query.incident_role(role.id, is_blank=state == "unassigned")
        if self.mode:
            query = query.mode(one_of=list(self.mode))
        problems.raise_if_any()
        return query
