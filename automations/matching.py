"""Whether an incident matches a ``GET /v2/incidents`` query, decided locally as the API does.

One matcher for everything that judges incidents without asking the API:
``test-rule`` on saved pages, a rule's ladder checked against its own query
at start-up, and incidents that arrive by webhook. It reads the same
``IncidentFilter`` the daemon sends, so what is matched here and what the API
returns come from one source of truth. Semantics (docs/incident-io-api.md section 4;
the sandbox implements the same, and tests/test_matching.py compares the two
over a seeded organisation):

- values of one operator are OR-ed; the operators of one filter (``severity``,
  or ``custom_field[ID]``) are AND-ed; filters combine by ``filter_mode``
  (``all``, the default, or ``any``);
- ``mode`` is a scope, always AND-ed: without it only standard and
  retrospective incidents match;
- ``severity[gte|lte]`` compare the catalog's ranks by severity ID (higher is more
  severe; one the catalog cannot rank matches neither) and never match an
  incident without a severity; ``one_of`` needs a severity, ``not_in`` keeps
  incidents without one (likewise ``incident_type`` and ``custom_field``);
- ``created_at``/``updated_at`` take dates (midnight UTC) or RFC 3339 times,
  bounds included;
- ``incident_role[ID][is_blank]=true`` means unassigned; ``one_of`` lists user IDs;
- ``custom_field[ID]`` compares option IDs for select fields, the raw value otherwise.

A ``where``'s local part (``where.LocalFilter``: ``team_ids``, which the API
cannot filter on) is AND-ed in when given, so a matcher answers "would this
rule or digest act on the incident", not only "would the API return it".

A condition that cannot be decided without the API (a ``severity[gte]`` bound
the catalog does not know) raises ``UndecidableFilter`` when the matcher is
built, never a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime

from automations.catalog import Catalog
from automations.errors import UndecidableFilter
from automations.incidentio import Incident, IncidentFilter, Severity
from automations.incidentio.filters import Condition
from automations.where import DEFAULT_MODES, LocalFilter

Predicate = Callable[[Incident], bool]


class IncidentMatcher:
    """An ``IncidentFilter`` (and a ``where``'s local part) compiled into a predicate."""

    def __init__(
        self, query: IncidentFilter, catalog: Catalog, local: LocalFilter | None = None
    ) -> None:
        self.query = query
        self.catalog = catalog
        self.local = local or LocalFilter()
        self.modes = DEFAULT_MODES
        self.any = False
        groups: dict[tuple[str, str], list[Predicate]] = {}
        self._severity: list[Callable[[Severity | None], bool]] = []
        for condition in query.conditions:
            if condition.param == "mode":
                self.modes = frozenset(condition.values)
            elif condition.param == "filter_mode":
                self.any = condition.values == ("any",)
            elif condition.param != "sort_by":
                group = groups.setdefault((condition.param, condition.target), [])
                group.append(self._compile(condition))
        self._groups = [_all(predicates) for predicates in groups.values()]

    def __call__(self, incident: Incident) -> bool:
        if incident.mode not in self.modes or not self.local(incident):
            return False
        if not self._groups:
            return True
        combine = any if self.any else all
        return combine(group(incident) for group in self._groups)

    def select(self, incidents: Iterable[Incident]) -> list[Incident]:
        """The incidents the API would return for the query (and the local part keeps), in
        the order given."""
        return [incident for incident in incidents if self(incident)]

    def admits_severity(self, severity: Severity) -> bool:
        """Whether the query's severity conditions let an incident of ``severity`` through."""
        return all(check(severity) for check in self._severity)

    # -- compiling one condition ----------------------------------------------------------

    def _compile(self, c: Condition) -> Predicate:
        wanted = frozenset(c.values)
        negate = c.operator == "not_in"
        if c.param == "status":
            return _among(lambda i: i.incident_status.id, wanted, negate)
        if c.param == "status_category":
            return _among(lambda i: i.incident_status.category, wanted, negate)
        if c.param == "incident_type":
            return _among(lambda i: i.incident_type.id if i.incident_type else None, wanted, negate)
        if c.param == "severity":
            check = self._severity_check(c)
            self._severity.append(check)
            return lambda incident: check(incident.severity)
        if c.param in ("created_at", "updated_at"):
            return _window(c)
        if c.param == "incident_role":
            return _role(c)
        if c.param == "custom_field":
            field_id = c.target
            return lambda i: (not wanted.isdisjoint(_field_keys(i, field_id))) != negate
        raise UndecidableFilter(f"{c.key}: this filter cannot be decided offline")

    def _severity_check(self, c: Condition) -> Callable[[Severity | None], bool]:
        wanted = frozenset(c.values)
        if c.operator in ("one_of", "not_in"):
            negate = c.operator == "not_in"
            return lambda s: (s is not None and s.id in wanted) != negate
        bound = self.catalog.severity_rank(c.values[0])
        if bound is None:
            raise UndecidableFilter(
                f"{c.key}: severity {c.values[0]!r} is not in the catalog or has no rank there, "
                "so its rank is unknown"
            )
        ranks = {s.id: s.rank for s in self.catalog.severities if s.rank is not None}

        # Ranked by the catalog, by ID; a severity it cannot rank matches neither bound.
        if c.operator == "gte":
            return lambda s: s is not None and s.id in ranks and ranks[s.id] >= bound
        return lambda s: s is not None and s.id in ranks and ranks[s.id] <= bound


def matches(query: IncidentFilter, incident: Incident, catalog: Catalog) -> bool:
    """Whether ``GET /v2/incidents`` with ``query`` would return ``incident``."""
    return IncidentMatcher(query, catalog)(incident)


def _all(predicates: Sequence[Predicate]) -> Predicate:
    return lambda incident: all(p(incident) for p in predicates)


def _among(
    key: Callable[[Incident], str | None], wanted: frozenset[str], negate: bool
) -> Predicate:
    return lambda incident: (key(incident) in wanted) != negate


def _window(c: Condition) -> Predicate:
    """created_at/updated_at against one bound or a ``start~end`` range, bounds included."""
    if c.operator == "date_range":
        start, _, end = c.values[0].partition("~")
        low: datetime | None = _moment(start, c.key)
        high: datetime | None = _moment(end, c.key)
    else:
        moment = _moment(c.values[0], c.key)
        low, high = (moment, None) if c.operator == "gte" else (None, moment)

    def check(incident: Incident) -> bool:
        value: datetime = getattr(incident, c.param)
        return (low is None or value >= low) and (high is None or value <= high)

    return check


def _moment(text: str, key: str) -> datetime:
    """A date means midnight UTC (the API's reading); a full time is taken as given."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UndecidableFilter(f"{key}: {text!r} is not a date or an RFC 3339 time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _role(c: Condition) -> Predicate:
    role_id = c.target
    if c.operator == "is_blank":
        blank = c.values == ("true",)
        return lambda i: (_assignee_id(i, role_id) is None) == blank
    wanted = frozenset(c.values)
    return lambda i: _assignee_id(i, role_id) in wanted


def _assignee_id(incident: Incident, role_id: str) -> str | None:
    for assignment in incident.incident_role_assignments:
        if assignment.role.id == role_id:
            return assignment.assignee.id if assignment.assignee is not None else None
    return None


def _field_keys(incident: Incident, field_id: str) -> set[str]:
    """What a custom field filter compares: option IDs, catalog entry IDs or raw values."""
    keys: set[str] = set()
    for entry in incident.custom_field_entries:
        if entry.custom_field.id != field_id:
            continue
        for value in entry.values:
            if value.value_option is not None:
                keys.add(value.value_option.id)
            elif value.value_catalog_entry is not None:
                keys.add(value.value_catalog_entry.id)
            else:
                raw = value.value_text or value.value_link or value.value_numeric
                if raw is not None:
                    keys.add(raw)
    return keys
