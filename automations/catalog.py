"""The organisation's settings (severities, statuses, ...) and name -> ID resolution.

Users write names in TOML; the API wants IDs. The catalog is fetched from the
API at start-up and cached in the ledger, so a daemon can still start when the
API is briefly down.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import BaseModel

from automations.errors import Problems, UnknownName
from automations.incidentio import (
    CustomField,
    CustomFieldOption,
    Incident,
    IncidentRole,
    IncidentStatus,
    IncidentTimestamp,
    IncidentType,
    Severity,
)

if TYPE_CHECKING:
    from automations.incidentio import IncidentIOClient


class _Named(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...


NamedT = TypeVar("NamedT", bound=_Named)


def rank_order(severity: Severity) -> tuple[bool, int]:
    """Sort key, least severe first; a severity without a rank sorts before all the others."""
    return (severity.rank is not None, severity.rank or 0)


T = TypeVar("T")


def resolve_name(
    resolve: Callable[[str], T], value: str, path: str, problems: Problems
) -> T | None:
    """``resolve(value)``, or None with the unknown name recorded at ``path``.

    For checks that keep going after an unknown name, so one run lists them all.
    """
    try:
        return resolve(value)
    except UnknownName as exc:
        problems.add(exc, path)
        return None


def find(items: Iterable[NamedT], value: str, kind: str) -> NamedT:
    """Match an ID exactly or a name case-insensitively."""
    items = list(items)
    for item in items:
        if item.id == value:
            return item
    folded = value.strip().casefold()
    for item in items:
        if item.name.casefold() == folded:
            return item
    raise UnknownName(kind, value, (item.name for item in items))


@dataclass(frozen=True)
class Catalog:
    """An immutable snapshot of the organisation's settings."""

    severities: tuple[Severity, ...] = ()
    statuses: tuple[IncidentStatus, ...] = ()
    incident_types: tuple[IncidentType, ...] = ()
    roles: tuple[IncidentRole, ...] = ()
    custom_fields: tuple[CustomField, ...] = ()
    custom_field_options: Mapping[str, tuple[CustomFieldOption, ...]] = field(default_factory=dict)
    timestamps: tuple[IncidentTimestamp, ...] = ()

    KINDS = (
        "severities",
        "statuses",
        "incident_types",
        "roles",
        "custom_fields",
        "custom_field_options",
        "timestamps",
    )

    def severity(self, value: str) -> Severity:
        return find(self.severities, value, "severity")

    def status(self, value: str) -> IncidentStatus:
        return find(self.statuses, value, "incident status")

    def incident_type(self, value: str) -> IncidentType:
        return find(self.incident_types, value, "incident type")

    def role(self, value: str) -> IncidentRole:
        return find(self.roles, value, "incident role")

    def custom_field(self, value: str) -> CustomField:
        return find(self.custom_fields, value, "custom field")

    def option(self, field_: CustomField, value: str) -> CustomFieldOption:
        options = self.custom_field_options.get(field_.id, ())
        for option in options:
            if option.id == value or option.value.casefold() == value.strip().casefold():
                return option
        raise UnknownName(f"option of {field_.name!r}", value, (o.value for o in options))

    def timestamp(self, value: str) -> IncidentTimestamp:
        return find(self.timestamps, value, "incident timestamp")

    def severity_by_id(self, severity_id: str) -> Severity | None:
        return next((s for s in self.severities if s.id == severity_id), None)

    def severity_rank(self, severity_id: str) -> int | None:
        """The catalog's rank for this severity ID; None when the catalog does not have the
        severity (e.g. created since start-up) or has it without a rank. The rank an
        incident embeds is never used: it may be missing, stale or wrong."""
        return self._ranks.get(severity_id)

    @functools.cached_property
    def _ranks(self) -> dict[str, int | None]:
        """Severity ID -> rank, built once: evaluation asks for every incident."""
        return {s.id: s.rank for s in self.severities}

    @classmethod
    def fetch(cls, client: IncidentIOClient) -> Catalog:
        """Everything rules may name: one request per kind, plus options per select field."""
        custom_fields = tuple(client.list_custom_fields())
        options = {
            f.id: tuple(client.list_custom_field_options(f.id))
            for f in custom_fields
            if f.field_type in ("single_select", "multi_select")
        }
        return cls(
            severities=tuple(sorted(client.list_severities(), key=rank_order)),
            statuses=tuple(client.list_incident_statuses()),
            incident_types=tuple(client.list_incident_types()),
            roles=tuple(client.list_incident_roles()),
            custom_fields=custom_fields,
            custom_field_options=options,
            timestamps=tuple(client.list_incident_timestamps()),
        )

    def to_cache(self) -> dict[str, list[dict[str, Any]]]:
        """Plain JSON per kind, for the ledger's catalog table."""

        def dump(items: Sequence[BaseModel]) -> list[dict[str, Any]]:
            return [item.model_dump(mode="json") for item in items]

        out = {
            kind: dump(getattr(self, kind)) for kind in self.KINDS if kind != "custom_field_options"
        }
        out["custom_field_options"] = [
            option.model_dump(mode="json")
            for options in self.custom_field_options.values()
            for option in options
        ]
        return out

    @classmethod
    def from_cache(cls, data: Mapping[str, list[dict[str, Any]]]) -> Catalog:
        options: dict[str, list[CustomFieldOption]] = {}
        for raw in data.get("custom_field_options", []):
            option = CustomFieldOption.model_validate(raw)
            options.setdefault(option.custom_field_id, []).append(option)
        return cls(
            severities=tuple(Severity.model_validate(x) for x in data.get("severities", [])),
            statuses=tuple(IncidentStatus.model_validate(x) for x in data.get("statuses", [])),
            incident_types=tuple(
                IncidentType.model_validate(x) for x in data.get("incident_types", [])
            ),
            roles=tuple(IncidentRole.model_validate(x) for x in data.get("roles", [])),
            custom_fields=tuple(
                CustomField.model_validate(x) for x in data.get("custom_fields", [])
            ),
            custom_field_options={k: tuple(v) for k, v in options.items()},
            timestamps=tuple(
                IncidentTimestamp.model_validate(x) for x in data.get("timestamps", [])
            ),
        )


def catalog_from_incidents(incidents: Iterable[Incident]) -> Catalog:
    """What saved incidents reveal of the organisation, for offline ``test-rule``.

    Incidents embed their severity, status, type, roles, custom fields (with
    options) and timestamps, which is enough to resolve the names a rule uses.
    """
    severities: dict[str, Severity] = {}
    statuses: dict[str, IncidentStatus] = {}
    types: dict[str, IncidentType] = {}
    roles: dict[str, IncidentRole] = {}
    fields: dict[str, CustomField] = {}
    options: dict[str, dict[str, CustomFieldOption]] = {}
    timestamps: dict[str, IncidentTimestamp] = {}
    for incident in incidents:
        if incident.severity is not None:
            severities[incident.severity.id] = incident.severity
        statuses[incident.incident_status.id] = incident.incident_status
        if incident.incident_type is not None:
            types[incident.incident_type.id] = incident.incident_type
        for assignment in incident.incident_role_assignments:
            roles[assignment.role.id] = assignment.role
        for entry in incident.custom_field_entries:
            fields[entry.custom_field.id] = entry.custom_field
            known = options.setdefault(entry.custom_field.id, {})
            embedded = (entry.custom_field.model_extra or {}).get("options") or []
            for raw in embedded:
                option = CustomFieldOption.model_validate(raw)
                known[option.id] = option
            for value in entry.values:
                if value.value_option is not None:
                    known[value.value_option.id] = value.value_option
        for item in incident.incident_timestamp_values:
            timestamps[item.incident_timestamp.id] = item.incident_timestamp
    return Catalog(
        severities=tuple(sorted(severities.values(), key=rank_order)),
        statuses=tuple(statuses.values()),
        incident_types=tuple(types.values()),
        roles=tuple(roles.values()),
        custom_fields=tuple(fields.values()),
        custom_field_options={k: tuple(v.values()) for k, v in options.items()},
        timestamps=tuple(timestamps.values()),
    )
