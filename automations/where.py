"""``where = {...}``: server-side filters written with names, compiled to an IncidentFilter.

Everything here becomes query parameters of ``GET /v2/incidents``, so the API
does the filtering and the daemon pages through only what a rule can act on.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from automations.catalog import UnknownName
from automations.incidentio import IncidentFilter

if TYPE_CHECKING:
    from automations.catalog import Catalog

StatusCategoryName = Literal[
    "triage", "declined", "merged", "canceled", "live", "learning", "closed", "paused"
]
ModeName = Literal["standard", "retrospective", "test", "tutorial"]


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
        """Resolve names to IDs; an unknown name is a ConfigError naming the key."""
        query = IncidentFilter()
        if self.status_category:
            query = query.status_category(one_of=list(self.status_category))
        if self.status:
            ids = [
                _resolve(catalog.status, v, f"{path}.status[{i}]").id
                for i, v in enumerate(self.status)
            ]
            query = query.status(one_of=ids)
        if self.severity:
            ids = [
                _resolve(catalog.severity, v, f"{path}.severity[{i}]").id
                for i, v in enumerate(self.severity)
            ]
            query = query.severity(one_of=ids)
        if self.severity_at_least:
            sev = _resolve(catalog.severity, self.severity_at_least, f"{path}.severity_at_least")
            query = query.severity(gte=sev.id)
        if self.severity_at_most:
            sev = _resolve(catalog.severity, self.severity_at_most, f"{path}.severity_at_most")
            query = query.severity(lte=sev.id)
        if self.incident_type:
            ids = [
                _resolve(catalog.incident_type, v, f"{path}.incident_type[{i}]").id
                for i, v in enumerate(self.incident_type)
            ]
            query = query.incident_type(one_of=ids)
        for name, values in self.custom_field.items():
            field_ = _resolve(catalog.custom_field, name, f"{path}.custom_field")
            ids = [
                _resolve(partial(catalog.option, field_), v, f"{path}.custom_field.{name}[{i}]").id
                for i, v in enumerate(values)
            ]
            query = query.custom_field(field_.id, one_of=ids)
        for name, state in self.role.items():
            role = _resolve(catalog.role, name, f"{path}.role")
            query = query.incident_role(role.id, is_blank=state == "unassigned")
        if self.mode:
            query = query.mode(one_of=list(self.mode))
        return query


T = TypeVar("T")


def _resolve(resolve: Callable[[str], T], value: str, where: str) -> T:
    try:
        return resolve(value)
    except UnknownName as exc:
        raise exc.at(where) from None
