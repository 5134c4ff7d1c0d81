"""``where = {...}``: server-side filters written with names, compiled to an IncidentFilter.

Everything here becomes query parameters of ``GET /v2/incidents``, so the API
does the filtering and the daemon pages through only what a rule can act on.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from automations.catalog import resolve_name
from automations.errors import Problems
from automations.incidentio import IncidentFilter

if TYPE_CHECKING:
    from automations.catalog import Catalog

StatusCategoryName = Literal[
    "triage", "declined", "merged", "canceled", "live", "learning", "closed", "paused"
]
ModeName = Literal["standard", "retrospective", "test", "tutorial"]


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

    def to_filter(self, catalog: Catalog, path: str = "where") -> IncidentFilter:
        """Resolve names to IDs; every unknown name is reported, each at its key path."""
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
