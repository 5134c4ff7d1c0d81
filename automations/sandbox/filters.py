"""``GET /v2/incidents`` query parsing and filter semantics (docs/incident-io-api.md section 4).

Keys are bracketed and repeat once per value: ``status_category[one_of]=live``;
roles and custom fields nest an ID: ``custom_field[FIELD_ID][one_of]=OPTION_ID``.
Values of one operator are OR-ed. The operators of one filter (``created_at``,
or ``custom_field[ID]``) are AND-ed, and filters combine by ``filter_mode``:
``all`` (AND, default) or ``any`` (OR).

Choices where the sources are silent or disagree (section 13):

- ``mode`` is a scope, not a condition: it is always AND-ed, even with
  ``filter_mode=any``; without it, test and tutorial incidents are excluded.
- ``created_at``/``updated_at`` take ``YYYY-MM-DD`` (midnight UTC, so
  ``lte=2024-05-02`` means "at or before 2024-05-02T00:00:00Z", as the docs say)
  or a full RFC3339 timestamp (naive means UTC). ``date_range=a~b`` is
  ``a <= t <= b`` with the same rule for each end.
- ``severity[gte|lte]`` compare ranks (higher is more severe) and exclude
  incidents without a severity; ``severity[not_in]`` keeps them.
- ``incident_role[ID][is_blank]=true`` means unassigned. ``is_set`` is accepted
  with its plain meaning: ``is_set=true`` means assigned (the docs' example says
  the opposite, which contradicts the operator's name; we follow the name).
- ``custom_field[ID][one_of|not_in]`` take option IDs for select fields and the
  raw value for text, link and numeric fields. ``not_in`` keeps unset fields.
- Unknown IDs inside ``one_of``/``not_in`` simply match nothing; an unknown
  filter, operator, role or custom field, a bad category, mode, boolean or
  date, and an unknown severity in ``gte``/``lte`` are 422 ``validation_error``
  with ``source.field`` set to the query key (e.g. ``status_category[is]``).
- An unknown ``after`` is 422 with ``source.field=after``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from automations.sandbox.catalog import Catalog
from automations.sandbox.errors import invalid
from automations.sandbox.model import CATEGORIES, MODES, Incident

Predicate = Callable[[Incident], bool]

MAX_PAGE_SIZE = 250
HARD_MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 25
DEFAULT_MODES = frozenset({"standard", "retrospective"})

_KEY = re.compile(r"^([a-z_]+)((?:\[[^\[\]]*\])*)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

_SIMPLE_OPERATORS = {
    "status": ("one_of", "not_in"),
    "status_category": ("one_of", "not_in"),
    "created_at": ("gte", "lte", "date_range"),
    "updated_at": ("gte", "lte", "date_range"),
    "severity": ("one_of", "not_in", "gte", "lte"),
    "incident_type": ("one_of", "not_in"),
    "mode": ("one_of",),
}
_NESTED_OPERATORS = {
    "incident_role": ("one_of", "is_blank", "is_set"),
    "custom_field": ("one_of", "not_in"),
}
_SCALARS = ("page_size", "after", "sort_by", "filter_mode")
_SORTS = {"created_at_newest_first": True, "created_at_oldest_first": False}


@dataclass(frozen=True)
class IncidentQuery:
    page_size: int
    after: str | None
    newest_first: bool
    cache_key: Hashable
    predicate: Predicate


def parse_page_size(raw: str | None, maximum: int, *, clamp_above: int | None = None) -> int:
    """1..maximum, else 422 on ``page_size``; values above ``clamp_above`` are served at it."""
    if raw is None:
        return DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        raise invalid("page_size", f"page_size must be an integer, got {raw!r}") from None
    if size < 1 or size > maximum:
        raise invalid("page_size", f"page_size must be between 1 and {maximum}, got {size}")
    if clamp_above is not None and size > clamp_above:
        return clamp_above
    return size


def scalar_params(pairs: Sequence[tuple[str, str]], allowed: Sequence[str]) -> dict[str, str]:
    """Plain ``key=value`` parameters; anything else or a repeat is 422 naming the key."""
    out: dict[str, str] = {}
    for key, value in pairs:
        if key not in allowed:
            raise invalid(key, f"unknown query parameter {key!r}", code="invalid_parameter")
        if key in out:
            raise invalid(key, f"query parameter {key!r} given more than once")
        out[key] = value
    return out


def parse_when(key: str, raw: str) -> datetime:
    """A ``YYYY-MM-DD`` date (midnight UTC) or an RFC3339 timestamp."""
    try:
        if _DATE.match(raw):
            return datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=UTC)
        value = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        raise invalid(key, f"{raw!r} is not a date (YYYY-MM-DD) or RFC3339 timestamp") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _boolean(key: str, raw: str) -> bool:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise invalid(key, f"{raw!r} is not true or false")


def in_window(value: datetime, lo: datetime | None, hi: datetime | None) -> bool:
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def _window(attr: str, lo: datetime | None, hi: datetime | None) -> Predicate:
    return lambda incident: in_window(getattr(incident, attr), lo, hi)


Window = tuple[datetime | None, datetime | None]


def time_windows(key: str, op: str, values: Sequence[str]) -> list[Window]:
    """``gte``, ``lte`` or ``date_range`` values as (from, to) bounds, both inclusive."""
    out: list[Window] = []
    for raw in values:
        if op == "date_range":
            parts = raw.split("~")
            if len(parts) != 2:
                raise invalid(key, f"date_range must be two dates joined by '~', got {raw!r}")
            out.append((parse_when(key, parts[0]), parse_when(key, parts[1])))
        elif op == "gte":
            out.append((parse_when(key, raw), None))
        else:
            out.append((None, parse_when(key, raw)))
    return out


def _time_condition(name: str, key: str, op: str, values: list[str]) -> list[Predicate]:
    """created_at or updated_at: one window per value, all of which must hold."""
    return [_window(name, lo, hi) for lo, hi in time_windows(key, op, values)]


def _severity_in(ids: frozenset[str]) -> Predicate:
    return lambda incident: incident.severity_id in ids


def _role_assigned(role_id: str, assigned: bool) -> Predicate:
    return lambda incident: (role_id in incident.roles) == assigned


def _all_of(predicates: tuple[Predicate, ...]) -> Predicate:
    return lambda incident: all(p(incident) for p in predicates)


def _simple(name: str, key: str, op: str, values: list[str], catalog: Catalog) -> list[Predicate]:
    wanted = frozenset(values)
    if name in ("created_at", "updated_at"):
        return _time_condition(name, key, op, values)
    if name == "status":
        if op == "one_of":
            return [lambda i: i.status_id in wanted]
        return [lambda i: i.status_id not in wanted]
    if name == "status_category":
        bad = sorted(wanted - set(CATEGORIES))
        if bad:
            raise invalid(
                key, f"unknown status category {bad[0]!r}; one of {', '.join(CATEGORIES)}"
            )
        ids = frozenset(s.id for s in catalog.statuses if s.category in wanted)
        if op == "one_of":
            return [lambda i: i.status_id in ids]
        return [lambda i: i.status_id not in ids]
    if name == "incident_type":
        if op == "one_of":
            return [lambda i: i.type_id in wanted]
        return [lambda i: i.type_id not in wanted]
    # severity
    if op == "one_of":
        return [lambda i: i.severity_id in wanted]
    if op == "not_in":
        return [lambda i: i.severity_id not in wanted]
    out: list[Predicate] = []
    for raw in values:
        bound = catalog.severity_by_id.get(raw)
        if bound is None:
            raise invalid(key, f"no severity with ID {raw!r}")
        if op == "gte":
            ids = frozenset(s.id for s in catalog.severities if s.rank >= bound.rank)
        else:
            ids = frozenset(s.id for s in catalog.severities if s.rank <= bound.rank)
        out.append(_severity_in(ids))
    return out


def _nested(
    name: str, item_id: str, key: str, op: str, values: list[str], catalog: Catalog
) -> list[Predicate]:
    wanted = frozenset(values)
    if name == "incident_role":
        if item_id not in catalog.role_by_id:
            raise invalid(f"incident_role[{item_id}]", f"no incident role with ID {item_id!r}")
        if op == "one_of":
            return [lambda i: i.roles.get(item_id) in wanted]
        out: list[Predicate] = []
        for raw in values:
            assigned = _boolean(key, raw) != (op == "is_blank")
            out.append(_role_assigned(item_id, assigned))
        return out
    custom_field = catalog.field_by_id.get(item_id)
    if custom_field is None:
        raise invalid(f"custom_field[{item_id}]", f"no custom field with ID {item_id!r}")
    if op == "one_of":
        return [lambda i: not wanted.isdisjoint(i.custom_fields.get(item_id, ()))]
    return [lambda i: wanted.isdisjoint(i.custom_fields.get(item_id, ()))]


def parse_incident_query(
    pairs: Sequence[tuple[str, str]], catalog: Catalog, *, accept_large_pages: bool
) -> IncidentQuery:
    """The whole ``GET /v2/incidents`` query, or SandboxErrorResponse (422) naming the bad key."""
    scalars: list[tuple[str, str]] = []
    grouped: dict[tuple[str, str, str | None, str], list[str]] = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if match is None:
            raise invalid(key, f"malformed query parameter {key!r}", code="invalid_parameter")
        name = match.group(1)
        brackets = re.findall(r"\[([^\[\]]*)\]", match.group(2))
        if name in _SCALARS and not brackets:
            scalars.append((key, value))
        elif name in _SIMPLE_OPERATORS and len(brackets) == 1:
            if brackets[0] not in _SIMPLE_OPERATORS[name]:
                ops = ", ".join(_SIMPLE_OPERATORS[name])
                raise invalid(key, f"unknown operator for {name}; accepted: {ops}")
            grouped.setdefault((key, name, None, brackets[0]), []).append(value)
        elif name in _NESTED_OPERATORS and len(brackets) == 2 and brackets[0]:
            if brackets[1] not in _NESTED_OPERATORS[name]:
                ops = ", ".join(_NESTED_OPERATORS[name])
                raise invalid(key, f"unknown operator for {name}; accepted: {ops}")
            grouped.setdefault((key, name, brackets[0], brackets[1]), []).append(value)
        else:
            known = name in _SCALARS or name in _SIMPLE_OPERATORS or name in _NESTED_OPERATORS
            message = f"malformed filter {key!r}" if known else f"unknown filter {key!r}"
            raise invalid(key, message, code="invalid_parameter")

    params = scalar_params(scalars, _SCALARS)
    page_size = parse_page_size(
        params.get("page_size"),
        HARD_MAX_PAGE_SIZE,
        clamp_above=None if accept_large_pages else MAX_PAGE_SIZE,
    )
    sort_by = params.get("sort_by", "created_at_newest_first")
    if sort_by not in _SORTS:
        raise invalid("sort_by", f"sort_by must be one of {', '.join(_SORTS)}")
    filter_mode = params.get("filter_mode", "all")
    if filter_mode not in ("all", "any"):
        raise invalid("filter_mode", "filter_mode must be 'all' or 'any'")

    modes = DEFAULT_MODES
    groups: dict[str, list[Predicate]] = {}
    for (key, name, item_id, op), values in grouped.items():
        if name == "mode":
            bad = sorted(set(values) - set(MODES))
            if bad:
                raise invalid(key, f"unknown mode {bad[0]!r}; one of {', '.join(MODES)}")
            modes = frozenset(values)
            continue
        if item_id is None:
            group = name
            predicates = _simple(name, key, op, values, catalog)
        else:
            group = f"{name}[{item_id}]"
            predicates = _nested(name, item_id, key, op, values, catalog)
        groups.setdefault(group, []).extend(predicates)

    conditions = [_all_of(tuple(ps)) for ps in groups.values()]
    combine = any if filter_mode == "any" else all

    def predicate(incident: Incident) -> bool:
        if incident.mode not in modes:
            return False
        return combine(condition(incident) for condition in conditions) if conditions else True

    cache_key = (filter_mode, tuple(sorted((k[0], tuple(sorted(v))) for k, v in grouped.items())))
    return IncidentQuery(page_size, params.get("after"), _SORTS[sort_by], cache_key, predicate)
