"""The organisation's configuration: severities, statuses, types, roles, fields, users.

Built once per reset and never mutated, so lookups can be precomputed and the
rendered catalog JSON shared between requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from automations.sandbox.model import (
    JSON,
    CustomField,
    DurationMetric,
    FollowUpPriority,
    IncidentType,
    Option,
    Role,
    Severity,
    Status,
    Team,
    Timestamp,
    User,
)

_Named = TypeVar("_Named", Severity, Status, IncidentType, Role, CustomField, Timestamp)


class UnknownSandboxName(LookupError):
    """A name or ID that the organisation does not have; the message lists valid ones."""


@dataclass(frozen=True)
class Catalog:
    api_key_id: str
    severities: tuple[Severity, ...]
    statuses: tuple[Status, ...]
    types: tuple[IncidentType, ...]
    roles: tuple[Role, ...]
    custom_fields: tuple[CustomField, ...]
    timestamps: tuple[Timestamp, ...]
    users: tuple[User, ...]  # active and inactive (GET /v2/users lists active ones by default)
    base_roles: dict[str, JSON]  # user role slug -> RBACRoleV2
    teams: tuple[Team, ...] = ()
    duration_metrics: tuple[DurationMetric, ...] = ()
    follow_up_priorities: tuple[FollowUpPriority, ...] = ()
    follow_up_categories: tuple[FollowUpPriority, ...] = ()
    severity_by_id: dict[str, Severity] = field(init=False)
    status_by_id: dict[str, Status] = field(init=False)
    type_by_id: dict[str, IncidentType] = field(init=False)
    role_by_id: dict[str, Role] = field(init=False)
    field_by_id: dict[str, CustomField] = field(init=False)
    timestamp_by_id: dict[str, Timestamp] = field(init=False)
    user_by_id: dict[str, User] = field(init=False)
    option_by_id: dict[str, Option] = field(init=False)
    team_by_id: dict[str, Team] = field(init=False)
    follow_up_option_by_id: dict[str, FollowUpPriority] = field(init=False)
    # ID -> the JSON an incident embeds for it; built once because every page repeats it
    embedded: dict[str, JSON] = field(init=False)

    def __post_init__(self) -> None:
        # frozen dataclass: derived indexes are set once, here, via object.__setattr__
        derived = {
            "severity_by_id": {s.id: s for s in self.severities},
            "status_by_id": {s.id: s for s in self.statuses},
            "type_by_id": {t.id: t for t in self.types},
            "role_by_id": {r.id: r for r in self.roles},
            "field_by_id": {f.id: f for f in self.custom_fields},
            "timestamp_by_id": {t.id: t for t in self.timestamps},
            "user_by_id": {u.id: u for u in self.users},
            "option_by_id": {o.id: o for f in self.custom_fields for o in f.options},
            "team_by_id": {t.id: t for t in self.teams},
            "follow_up_option_by_id": {
                o.id: o for o in (*self.follow_up_priorities, *self.follow_up_categories)
            },
            "embedded": {
                **{s.id: s.to_json() for s in self.severities},
                **{s.id: s.to_json() for s in self.statuses},
                **{t.id: t.to_json() for t in self.types},
                **{r.id: r.to_embedded_json() for r in self.roles},
                **{f.id: f.to_type_info_json() for f in self.custom_fields},
                **{o.id: o.to_json() for f in self.custom_fields for o in f.options},
                **{t.id: t.to_json() for t in self.timestamps},
                **{u.id: u.to_json() for u in self.users},
            },
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    # -- lookups used by the API (IDs) and the control routes (IDs or names) --

    @property
    def active_users(self) -> tuple[User, ...]:
        """Who can be assigned, lead or create: inactive users did all that only in the past."""
        return tuple(u for u in self.users if u.is_active)

    def team_named(self, name: str) -> Team | None:
        return next((t for t in self.teams if t.name == name), None)

    def first_status(self, category: str) -> Status:
        return min((s for s in self.statuses if s.category == category), key=lambda s: s.rank)

    def statuses_in(self, category: str) -> list[Status]:
        return [s for s in self.statuses if s.category == category]

    def default_type(self) -> IncidentType:
        return next(t for t in self.types if t.is_default)

    def role_of_type(self, role_type: str) -> Role:
        return next(r for r in self.roles if r.role_type == role_type)

    def timestamp_named(self, name: str) -> Timestamp:
        return next(t for t in self.timestamps if t.name == name)

    def field_named(self, name: str) -> CustomField:
        return next(f for f in self.custom_fields if f.name == name)

    def find_user(self, ref: str) -> User | None:
        """A user by ID, email, Slack user ID or (for the control routes) name."""
        for user in self.users:
            if ref in (user.id, user.email, user.slack_user_id, user.name):
                return user
        return None

    def resolve(self, items: tuple[_Named, ...], ref: str, what: str) -> _Named:
        """An item by ID or case-insensitive name, or UnknownSandboxName listing the choices."""
        for item in items:
            if item.id == ref or item.name.lower() == ref.lower():
                return item
        choices = ", ".join(i.name for i in items)
        raise UnknownSandboxName(f"unknown {what} {ref!r}; expected one of: {choices}")

    def resolve_option(self, custom_field: CustomField, ref: str) -> Option:
        for option in custom_field.options:
            if option.id == ref or option.value.lower() == ref.lower():
                return option
        choices = ", ".join(o.value for o in custom_field.options)
        raise UnknownSandboxName(
            f"unknown option {ref!r} for {custom_field.name}; expected one of: {choices}"
        )
