"""Server-side filters for ``GET /v2/incidents``, encoded the way the API reads them.

The API takes bracketed deepObject keys with the key repeated once per value
(``status_category[one_of]=live&status_category[one_of]=learning``); roles and
custom fields nest one level deeper (``custom_field[ID][one_of]=OPTION``).

An ``IncidentFilter`` is immutable and canonical: values are de-duplicated and
sorted (values of one operator are OR-ed, so order means nothing), conditions
are sorted, so two filters that ask the same question are equal, hash equal and
have the same ``key()``. The engine uses that to fetch each query once a cycle.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from urllib.parse import urlencode

from automations.incidentio.models import IncidentMode, StatusCategory

Values = str | Iterable[str]
DateLike = date | datetime | str

SORT_BY = ("created_at_newest_first", "created_at_oldest_first")
FILTER_MODES = ("all", "any")

# param -> accepted operators; the order is only used in error messages.
_OPERATORS: dict[str, tuple[str, ...]] = {
    "status": ("one_of", "not_in"),
    "status_category": ("one_of", "not_in"),
    "created_at": ("gte", "lte", "date_range"),
    "updated_at": ("gte", "lte", "date_range"),
    "severity": ("one_of", "not_in", "gte", "lte"),
    "incident_type": ("one_of", "not_in"),
    "mode": ("one_of",),
    "incident_role": ("one_of", "is_blank"),
    "custom_field": ("one_of", "not_in"),
}
_NESTED = ("incident_role", "custom_field")
_SINGLE_VALUED = ("gte", "lte", "date_range", "is_blank")
_PLAIN = ("sort_by", "filter_mode")
_PAGINATION = ("page_size", "after")
_WORDS = {"one_of": "one of", "not_in": "not in", "gte": ">=", "lte": "<=", "date_range": "between"}
_KEY = re.compile(r"^([a-z_]+)(?:\[([^\[\]]+)\])?(?:\[([^\[\]]+)\])?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CATEGORIES = tuple(c.value for c in StatusCategory)
_MODES = tuple(m.value for m in IncidentMode)


@dataclass(frozen=True, order=True)
class Condition:
    """One encoded operator: ``param[target][operator]=value`` for each value."""

    param: str
    target: str  # the role or custom field ID for nested params, else ""
    operator: str  # "" for plain keys (sort_by, filter_mode)
    values: tuple[str, ...]

    @property
    def key(self) -> str:
        if not self.operator:
            return self.param
        target = f"[{self.target}]" if self.target else ""
        return f"{self.param}{target}[{self.operator}]"


@dataclass(frozen=True)
class IncidentFilter:
    """An immutable, hashable query; each method returns a new filter."""

    conditions: tuple[Condition, ...] = ()

    # --- builders ---------------------------------------------------------------

    def status(
        self, *, one_of: Values | None = None, not_in: Values | None = None
    ) -> IncidentFilter:
        """By status ID."""
        return self._set("status", "", one_of=one_of, not_in=not_in)

    def status_category(
        self, *, one_of: Values | None = None, not_in: Values | None = None
    ) -> IncidentFilter:
        """By category name (live, learning, ...; the app's 'Active' is live)."""
        for values in (one_of, not_in):
            for value in _strings(values, "status_category"):
                if value not in _CATEGORIES:
                    hint = " (the app's 'Active' is 'live')" if value.lower() == "active" else ""
                    raise ValueError(
                        f"status_category: {value!r} is not a status category{hint}; "
                        f"valid: {', '.join(_CATEGORIES)}"
                    )
        return self._set("status_category", "", one_of=one_of, not_in=not_in)

    def created_at(
        self,
        *,
        gte: DateLike | None = None,
        lte: DateLike | None = None,
        date_range: tuple[DateLike, DateLike] | None = None,
    ) -> IncidentFilter:
        """By creation date (whole days: the API compares with midnight UTC)."""
        return self._dates("created_at", gte, lte, date_range)

    def updated_at(
        self,
        *,
        gte: DateLike | None = None,
        lte: DateLike | None = None,
        date_range: tuple[DateLike, DateLike] | None = None,
    ) -> IncidentFilter:
        """By last-update date."""
        return self._dates("updated_at", gte, lte, date_range)

    def severity(
        self,
        *,
        one_of: Values | None = None,
        not_in: Values | None = None,
        gte: str | None = None,
        lte: str | None = None,
    ) -> IncidentFilter:
        """By severity ID; gte/lte compare ranks with that severity's (higher is more severe)."""
        return self._set("severity", "", one_of=one_of, not_in=not_in, gte=gte, lte=lte)

    def incident_type(
        self, *, one_of: Values | None = None, not_in: Values | None = None
    ) -> IncidentFilter:
        """By incident type ID."""
        return self._set("incident_type", "", one_of=one_of, not_in=not_in)

    def incident_role(
        self, role_id: str, *, one_of: Values | None = None, is_blank: bool | None = None
    ) -> IncidentFilter:
        """By who holds a role (user IDs), or whether it is unassigned."""
        if is_blank is not None and not isinstance(is_blank, bool):
            raise ValueError(f"incident_role[{role_id}]: is_blank must be True or False")
        blank = None if is_blank is None else ("true" if is_blank else "false")
        return self._set("incident_role", _target(role_id), one_of=one_of, is_blank=blank)

    def custom_field(
        self, field_id: str, *, one_of: Values | None = None, not_in: Values | None = None
    ) -> IncidentFilter:
        """By custom field option IDs."""
        return self._set("custom_field", _target(field_id), one_of=one_of, not_in=not_in)

    def mode(self, *, one_of: Values) -> IncidentFilter:
        """By mode; without it the API returns standard and retrospective incidents only."""
        for value in _strings(one_of, "mode"):
            if value not in _MODES:
                raise ValueError(f"mode: {value!r} is not a mode; valid: {', '.join(_MODES)}")
        return self._set("mode", "", one_of=one_of)

    def sort_by(self, order: str) -> IncidentFilter:
        """created_at_newest_first (the API's default) or created_at_oldest_first."""
        return self._plain("sort_by", order, SORT_BY)

    def filter_mode(self, mode: str) -> IncidentFilter:
        """Whether every filter must match ("all", the default) or any one ("any")."""
        return self._plain("filter_mode", mode, FILTER_MODES)

    # --- encoding ---------------------------------------------------------------

    def to_params(self) -> list[tuple[str, str]]:
        """The query pairs, one per value, in canonical order."""
        return [(c.key, value) for c in self.conditions for value in c.values]

    def key(self) -> str:
        """A canonical string: equal filters give equal keys (a cache key per cycle)."""
        return urlencode(self.to_params(), safe="[]~")

    @classmethod
    def from_params(cls, pairs: Iterable[tuple[str, str]]) -> IncidentFilter:
        """Parse query pairs back (pagination keys are ignored); ValueError if invalid."""
        grouped: dict[tuple[str, str, str], list[str]] = {}
        for key, value in pairs:
            match = _KEY.match(key)
            if match is None:
                raise ValueError(f"malformed filter key {key!r}")
            param, first, second = match.groups()
            if param in _PAGINATION and first is None:
                continue
            if param in _PLAIN and first is None:
                grouped.setdefault((param, "", ""), []).append(value)
            elif param in _NESTED and second is not None:
                grouped.setdefault((param, first, second), []).append(value)
            elif param in _OPERATORS and param not in _NESTED and first and second is None:
                grouped.setdefault((param, "", first), []).append(value)
            else:
                raise ValueError(f"unknown filter key {key!r}")
        result = cls()
        for (param, target, operator), values in grouped.items():
            result = result._parsed(param, target, operator, values)
        return result

    def describe(self) -> str:
        """A human summary for logs, e.g. 'status_category one of learning, live'."""
        parts = []
        joiner = " and "
        for c in self.conditions:
            if c.param == "filter_mode":
                joiner = " or " if c.values == ("any",) else " and "
                continue
            if c.param == "sort_by":
                continue
            what = f"{c.param} {c.target}" if c.target else c.param
            if c.operator == "is_blank":
                parts.append(f"{what} {'unassigned' if c.values == ('true',) else 'assigned'}")
                continue
            op = _WORDS[c.operator]
            values = ", ".join(v.replace("~", " and ") for v in c.values)
            parts.append(f"{what} {op} {values}")
        if not parts:
            return "all incidents (standard and retrospective)"
        text = joiner.join(parts)
        order = next((c.values[0] for c in self.conditions if c.param == "sort_by"), None)
        return f"{text} ({order})" if order else text

    def __repr__(self) -> str:
        return f"IncidentFilter({self.key()!r})"

    # --- internals --------------------------------------------------------------

    def _set(self, param: str, target: str, **operators: Values | None) -> IncidentFilter:
        updated = {(c.param, c.target, c.operator): c for c in self.conditions}
        given = {op: values for op, values in operators.items() if values is not None}
        if not given:
            valid = ", ".join(_OPERATORS[param])
            raise ValueError(f"{param}: give at least one operator ({valid})")
        for operator, values in given.items():
            cleaned = _strings(values, f"{param}[{operator}]")
            if not cleaned:
                raise ValueError(f"{param}[{operator}]: needs at least one value")
            if operator in _SINGLE_VALUED and len(cleaned) != 1:
                raise ValueError(f"{param}[{operator}]: takes exactly one value, got {cleaned}")
            updated[(param, target, operator)] = Condition(param, target, operator, cleaned)
        return replace(self, conditions=tuple(sorted(updated.values())))

    def _dates(
        self,
        param: str,
        gte: DateLike | None,
        lte: DateLike | None,
        date_range: tuple[DateLike, DateLike] | None,
    ) -> IncidentFilter:
        encoded_range = None
        if date_range is not None:
            if not isinstance(date_range, tuple | list) or len(date_range) != 2:
                raise ValueError(f"{param}[date_range]: give (start, end)")
            start, end = (_day(d, f"{param}[date_range]") for d in date_range)
            if start > end:
                raise ValueError(f"{param}[date_range]: start {start} is after end {end}")
            encoded_range = f"{start.isoformat()}~{end.isoformat()}"
        return self._set(
            param,
            "",
            gte=None if gte is None else _day(gte, f"{param}[gte]").isoformat(),
            lte=None if lte is None else _day(lte, f"{param}[lte]").isoformat(),
            date_range=encoded_range,
        )

    def _plain(self, param: str, value: str, valid: tuple[str, ...]) -> IncidentFilter:
        if value not in valid:
            raise ValueError(f"{param}: {value!r} is not one of {', '.join(valid)}")
        kept = [c for c in self.conditions if c.param != param]
        return replace(self, conditions=tuple(sorted([*kept, Condition(param, "", "", (value,))])))

    def _parsed(self, param: str, target: str, operator: str, values: list[str]) -> IncidentFilter:
        if param in _PLAIN:
            if len(values) != 1:
                raise ValueError(f"{param}: takes exactly one value, got {values}")
            return self.sort_by(values[0]) if param == "sort_by" else self.filter_mode(values[0])
        if operator not in _OPERATORS[param]:
            valid = ", ".join(_OPERATORS[param])
            raise ValueError(f"{param}: unknown operator {operator!r}; valid: {valid}")
        if operator in _SINGLE_VALUED and len(values) != 1:
            raise ValueError(f"{param}[{operator}]: takes exactly one value, got {values}")
        if param in ("created_at", "updated_at"):
            if operator == "date_range":
                start, sep, end = values[0].partition("~")
                if not sep:
                    raise ValueError(f"{param}[date_range]: expected START~END, got {values[0]!r}")
                return self._dates(param, None, None, (start, end))
            bound = {operator: values[0]}
            return self._dates(param, bound.get("gte"), bound.get("lte"), None)
        if operator == "is_blank":
            if values[0] not in ("true", "false"):
                raise ValueError(f"{param}[{target}][is_blank]: expected true or false")
            return self.incident_role(target, is_blank=values[0] == "true")
        if param == "status_category":
            return self.status_category(**{operator: values})
        if param == "mode":
            return self.mode(one_of=values)
        return self._set(param, target, **{operator: values})


def _strings(values: Values | None, what: str) -> tuple[str, ...]:
    """Sorted, de-duplicated values; a bare string is one value, not its characters."""
    if values is None:
        return ()
    items = [values] if isinstance(values, str) else list(values)
    for item in items:
        if not isinstance(item, str) or not item:
            raise ValueError(f"{what}: values must be non-empty strings, got {item!r}")
    return tuple(sorted({str(item) for item in items}))


def _target(identifier: str) -> str:
    if not isinstance(identifier, str) or not identifier or any(ch in identifier for ch in "[]"):
        raise ValueError(f"not a usable ID: {identifier!r}")
    return identifier


def _day(value: DateLike, what: str) -> date:
    """Dates as the API takes them; an aware datetime counts in UTC."""
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _DATE.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{what}: expected a date like 2024-05-01, got {value!r}")
