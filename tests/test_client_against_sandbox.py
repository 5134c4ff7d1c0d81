"""The real client against the real sandbox over HTTP on 127.0.0.1: conformance, filters, paging.

Nothing is mocked: the client speaks HTTP to a uvicorn-served sandbox, and
the sandbox's request log is the witness of what went over the wire. Every
test runs with a distinctive API key, and an autouse fixture checks that it
never shows up in the captured logs (the resilience half is in
test_client_sandbox_resilience.py).
"""

from __future__ import annotations

import logging
import math
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from automations.catalog import Catalog, catalog_from_incidents
from automations.incidentio import (
    CustomField,
    CustomFieldEntryPayload,
    CustomFieldOption,
    FollowUp,
    Incident,
    IncidentEdit,
    IncidentFilter,
    IncidentIOClient,
    IncidentPage,
    IncidentRole,
    IncidentRoleAssignmentPayload,
    IncidentStatus,
    IncidentTimestamp,
    IncidentTimestampValuePayload,
    IncidentType,
    IncidentUpdate,
    Severity,
    User,
    UserReference,
)
from automations.sandbox import SandboxThread
from tests.openapi_conformance import Conformance
from tests.sandbox_server import SandboxControl

SECRET = "sbx_live_7f3c9a1e5d2b8046c1aa9e"  # distinctive, so a leak cannot hide in other text
ALL_MODES = ("standard", "retrospective", "test", "tutorial")
DEFAULT_MODES = frozenset({"standard", "retrospective"})
FILTER_PAGE_SIZE = 30  # small, so filtered results span several pages


# --- shared helpers (the resilience file imports these) ----------------------------


def make_client(base_url: str, **kwargs: Any) -> IncidentIOClient:
    """A client for the sandbox; a generous private bucket unless a test sets one."""
    kwargs.setdefault("requests_per_minute", 60_000)
    kwargs.setdefault("timeout", 5.0)
    kwargs.setdefault("retry_timeout", 15.0)
    return IncidentIOClient(base_url=base_url, api_key=SECRET, **kwargs)


def assert_no_secret(exc: BaseException) -> None:
    """The key is in no part of an exception: str, repr, args or the chained traceback."""
    texts = [str(exc), repr(exc), *map(repr, exc.args), *traceback.format_exception(exc)]
    for text in texts:
        assert SECRET not in text


def use_secret_key(sandbox: SandboxControl) -> SandboxControl:
    """The sandbox (seed 1, 200 incidents) reset to accept only ``SECRET``."""
    sandbox.reset(api_key=SECRET)
    return sandbox


def watch_logs_for_key(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fixture body: capture everything (DEBUG, httpx, httpcore), then find no key in it."""
    caplog.set_level(logging.DEBUG)
    yield
    # at teardown caplog.records holds only teardown's records: read each phase's
    formatter = logging.Formatter()
    for when in ("setup", "call"):
        for record in caplog.get_records(when):
            assert SECRET not in formatter.format(record), record.getMessage()


@pytest.fixture
def org(sandbox: SandboxControl) -> SandboxControl:
    return use_secret_key(sandbox)


@pytest.fixture
def client(org: SandboxControl) -> Iterator[IncidentIOClient]:
    with make_client(org.base_url) as c:
        yield c


@pytest.fixture(autouse=True)
def no_key_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every log line of every test here, DEBUG included, lacks the key."""
    yield from watch_logs_for_key(caplog)


def api_log(sandbox: SandboxControl, path_prefix: str = "/v") -> list[dict[str, Any]]:
    return [r for r in sandbox.requests() if r["path"].startswith(path_prefix)]


class RecordingTransport(httpx.HTTPTransport):
    """A real HTTP transport that keeps each exchange, to validate responses afterwards."""

    def __init__(self) -> None:
        super().__init__()
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        response.read()
        self.exchanges.append((request, response))
        return response


# --- conformance: every method, every request and response against the schema -------


def test_every_client_method_conforms(org: SandboxControl, openapi: Conformance) -> None:
    """Each client method hits its documented route; requests and responses validate."""
    transport = RecordingTransport()
    with make_client(org.base_url, transport=transport) as api:
        severities = api.list_severities()
        statuses = api.list_incident_statuses()
        types = api.list_incident_types()
        roles = api.list_incident_roles()
        fields = api.list_custom_fields()
        timestamps = api.list_incident_timestamps()
        team = next(f for f in fields if f.name == "Team")
        options = api.list_custom_field_options(team.id)
        major = next(s for s in severities if s.name == "Major")
        live = next(s for s in statuses if s.category == "live")
        lead = next(r for r in roles if r.role_type == "lead")
        comms = next(r for r in roles if r.role_type == "custom")
        users = list(api.iter_users())
        busy = (
            IncidentFilter()
            .status_category(one_of=["live", "learning"])
            .severity(gte=major.id)
            .created_at(gte=date(2000, 1, 1))
            .incident_role(lead.id, is_blank=False)
            .custom_field(team.id, not_in=options[0].id)
            .sort_by("created_at_oldest_first")
            .filter_mode("all")
        )
        pages = list(api.iter_incident_pages(busy, page_size=5))
        everything = list(api.iter_incidents(IncidentFilter().mode(one_of=ALL_MODES)))
        target = next(i for i in everything if i.status_category == "live")
        edit = IncidentEdit(
            name="Edited through the client",
            summary="Conformance run",
            severity_id=major.id,
            incident_status_id=live.id,
            call_url="https://meet.example.com/abc",
            custom_field_entries=(CustomFieldEntryPayload.options(team.id, options[1].id),),
            incident_role_assignments=(
                IncidentRoleAssignmentPayload(
                    incident_role_id=comms.id, assignee=UserReference(email=users[2].email)
                ),
            ),
            incident_timestamp_values=(
                IncidentTimestampValuePayload(
                    incident_timestamp_id=timestamps[1].id,
                    value=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
                ),
            ),
        )
        edited = api.edit_incident(target.id, edit, notify_incident_channel=False)
        created = api.create_incident(
            idempotency_key="conformance-1",
            visibility="public",
            name="Created through the client",
            severity_id=major.id,
            incident_type_id=types[0].id,
            mode="standard",
        )
        shown = [
            api.get_incident(created.id),
            api.get_incident(created.reference),
            api.get_incident(created.reference.removeprefix("INC-")),
        ]
        one_severity = api.get_severity(major.id)
        one_status = api.get_incident_status(live.id)
        updates = list(api.iter_incident_updates(page_size=100))
        own_updates = list(api.iter_incident_updates(target.id, page_size=1))
        follow_ups = list(api.iter_follow_ups(page_size=50))
        own_follow_ups = list(api.iter_follow_ups(incident_id=target.id, incident_mode="standard"))
        one_follow_up = api.get_follow_up(follow_ups[-1].id)
        by_email = list(api.iter_users(email=users[3].email))
        by_slack = list(api.iter_users(slack_user_id=users[4].slack_user_id, page_size=5))

    # every response parsed into the client's models, with the data the sandbox holds
    typed: list[tuple[list[Any], type[Any]]] = [
        (severities, Severity),
        (statuses, IncidentStatus),
        (types, IncidentType),
        (roles, IncidentRole),
        (fields, CustomField),
        (timestamps, IncidentTimestamp),
        (options, CustomFieldOption),
        (users, User),
        (everything, Incident),
        (updates, IncidentUpdate),
        (follow_ups, FollowUp),
    ]
    for items, model in typed:
        assert items, model
        assert all(isinstance(item, model) for item in items)
    assert [s.rank for s in severities] == [1, 2, 3]
    assert {o.custom_field_id for o in options} == {team.id}
    assert len(everything) == 200
    assert pages
    assert all(isinstance(p, IncidentPage) for p in pages)
    busy_ids = [i.id for p in pages for i in p.incidents]
    assert len(busy_ids) == len(set(busy_ids)) == pages[0].total_record_count
    assert edited.name == "Edited through the client"
    assert edited.call_url == "https://meet.example.com/abc"
    assert [v.value_option.id for v in edited.custom_field_values(team.id) if v.value_option] == [
        options[1].id
    ]
    assignee = edited.role_assignee(comms.id)
    assert assignee is not None
    assert assignee.id == users[2].id
    assert edited.timestamp_value(timestamps[1].id) == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert created.name == "Created through the client"
    assert {i.id for i in shown} == {created.id}
    assert one_severity == major
    assert one_status == live
    assert own_updates
    assert {u.incident_id for u in own_updates} == {target.id}
    assert {f.incident_id for f in own_follow_ups} <= {target.id}
    assert one_follow_up == follow_ups[-1]
    assert [f.id for f in follow_ups] == sorted(f.id for f in follow_ups)  # by ID, oldest first
    assert [u.id for u in by_email] == [users[3].id]
    assert [u.id for u in by_slack] == [users[4].id]

    # every request the sandbox saw is one the real API documents
    log = api_log(org)
    assert log
    assert all(entry["status"] == 200 for entry in log)
    templates: Counter[str] = Counter()
    for entry in log:
        method, path = entry["method"], entry["path"]
        pairs = [(k, v) for k, v in entry["query_pairs"]]
        openapi.validate_request(method, path, pairs, entry["body"])
        templates[f"{method} {openapi.operation(method, path).template}"] += 1
    assert set(templates) == {
        "GET /v1/severities",
        "GET /v1/severities/{id}",
        "GET /v1/incident_statuses",
        "GET /v1/incident_statuses/{id}",
        "GET /v1/incident_types",
        "GET /v2/incident_roles",
        "GET /v2/custom_fields",
        "GET /v1/custom_field_options",
        "GET /v2/incident_timestamps",
        "GET /v2/incidents",
        "GET /v2/incidents/{id}",
        "POST /v2/incidents",
        "POST /v2/incidents/{id}/actions/edit",
        "GET /v2/incident_updates",
        "GET /v3/follow_ups",
        "GET /v3/follow_ups/{id}",
        "GET /v2/users",
    }
    assert templates["GET /v2/incidents/{id}"] == 3
    assert templates["GET /v2/incident_updates"] >= 3  # paged: more than one page each time

    # and every response the client read is one the real API could send
    assert len(transport.exchanges) == len(log)
    for request, response in transport.exchanges:
        openapi.validate_response(
            request.method, request.url.path, response.status_code, response.json()
        )
        assert "authorization" not in response.headers


def test_catalog_fetch_against_the_sandbox(client: IncidentIOClient, org: SandboxControl) -> None:
    """Catalog.fetch reads every kind, with options per select field from the options route."""
    catalog = Catalog.fetch(client)
    assert [s.name for s in catalog.severities] == ["Minor", "Major", "Critical"]
    assert {s.category for s in catalog.statuses} >= {"triage", "live", "learning", "closed"}
    assert catalog.incident_types
    assert catalog.roles
    assert catalog.timestamps
    select = [f for f in catalog.custom_fields if f.field_type == "single_select"]
    assert {f.name for f in select} == {"Team", "Phase"}
    assert set(catalog.custom_field_options) == {f.id for f in select}
    for custom_field in select:
        options = catalog.custom_field_options[custom_field.id]
        assert len(options) >= 3
        assert {o.custom_field_id for o in options} == {custom_field.id}
        assert catalog.option(custom_field, options[-1].value.upper()) == options[-1]
    # the options route agrees with the options every incident embeds
    embedded = catalog_from_incidents(
        client.iter_incidents(IncidentFilter().mode(one_of=ALL_MODES))
    )
    for custom_field in select:
        fetched = {o.id: o.value for o in catalog.custom_field_options[custom_field.id]}
        seen = {o.id: o.value for o in embedded.custom_field_options[custom_field.id]}
        assert fetched == seen
    assert Catalog.from_cache(catalog.to_cache()) == catalog
    option_requests = [r for r in api_log(org) if r["path"] == "/v1/custom_field_options"]
    assert sorted(dict(r["query_pairs"])["custom_field_id"] for r in option_requests) == sorted(
        f.id for f in select
    )
    assert {dict(r["query_pairs"])["page_size"] for r in option_requests} == {"250"}


# --- filters: what the server returns equals brute force over all the data ----------


@dataclass(frozen=True)
class Org:
    """The whole seeded organisation as the client sees it, every mode included."""

    incidents: tuple[Incident, ...]  # newest first, as the API orders them
    severities: tuple[Severity, ...]
    statuses: tuple[IncidentStatus, ...]
    types: tuple[IncidentType, ...]
    roles: tuple[IncidentRole, ...]
    fields: tuple[CustomField, ...]

    def severity(self, name: str) -> Severity:
        return next(s for s in self.severities if s.name == name)

    def field(self, name: str) -> CustomField:
        return next(f for f in self.fields if f.name == name)

    def role(self, role_type: str) -> IncidentRole:
        return next(r for r in self.roles if r.role_type == role_type)

    def common(self, key: Callable[[Incident], str | None], n: int) -> list[str]:
        """The ``n`` most frequent non-empty values of ``key`` among default-mode incidents."""
        counts = Counter(key(i) for i in self.incidents if i.mode in DEFAULT_MODES)
        counts.pop(None, None)
        return [value for value, _ in counts.most_common(n) if value]

    def quantile_day(self, attr: str, q: float) -> date:
        times = sorted(getattr(i, attr) for i in self.incidents)
        moment: datetime = times[int(q * (len(times) - 1))]
        return moment.astimezone(UTC).date()


@dataclass(frozen=True)
class Case:
    filter: IncidentFilter
    matches: Callable[[Incident], bool]
    modes: frozenset[str] = DEFAULT_MODES
    order: str = "newest"


def midnight(day: date) -> datetime:
    """Dates bound at 00:00 UTC (docs/incident-io-api.md section 4)."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def option_ids(incident: Incident, field_id: str) -> set[str]:
    return {v.value_option.id for v in incident.custom_field_values(field_id) if v.value_option}


def assignee_id(incident: Incident, role_id: str) -> str | None:
    user = incident.role_assignee(role_id)
    return user.id if user is not None else None


def _status(op: str) -> Callable[[Org], Case]:
    def build(org: Org) -> Case:
        ids = org.common(lambda i: i.incident_status.id, 2)
        if op == "one_of":
            return Case(IncidentFilter().status(one_of=ids), lambda i: i.incident_status.id in ids)
        return Case(IncidentFilter().status(not_in=ids), lambda i: i.incident_status.id not in ids)

    return build


def _category(op: str) -> Callable[[Org], Case]:
    def build(org: Org) -> Case:
        if op == "one_of":
            wanted = {"live", "learning"}
            return Case(
                IncidentFilter().status_category(one_of=wanted),
                lambda i: i.status_category in wanted,
            )
        unwanted = {"closed", "declined"}
        return Case(
            IncidentFilter().status_category(not_in=unwanted),
            lambda i: i.status_category not in unwanted,
        )

    return build


def _dates(attr: str, op: str) -> Callable[[Org], Case]:
    def build(org: Org) -> Case:
        low, mid, high = (org.quantile_day(attr, q) for q in (0.25, 0.5, 0.75))
        builder = getattr(IncidentFilter(), attr)
        if op == "gte":
            return Case(builder(gte=mid), lambda i: getattr(i, attr) >= midnight(mid))
        if op == "lte":
            return Case(builder(lte=mid), lambda i: getattr(i, attr) <= midnight(mid))
        return Case(
            builder(date_range=(low, high)),
            lambda i: midnight(low) <= getattr(i, attr) <= midnight(high),
        )

    return build


def _severity(op: str) -> Callable[[Org], Case]:
    def build(org: Org) -> Case:
        major = org.severity("Major")
        if op == "one_of":
            return Case(
                IncidentFilter().severity(one_of=major.id),
                lambda i: i.severity is not None and i.severity.id == major.id,
            )
        if op == "not_in":  # incidents without a severity are kept
            return Case(
                IncidentFilter().severity(not_in=major.id),
                lambda i: i.severity is None or i.severity.id != major.id,
            )
        if op == "gte":  # by rank, higher is more severe; no severity never matches
            return Case(
                IncidentFilter().severity(gte=major.id),
                lambda i: i.severity is not None and (i.severity.rank or 0) >= (major.rank or 0),
            )
        return Case(
            IncidentFilter().severity(lte=major.id),
            lambda i: i.severity is not None and (i.severity.rank or 0) <= (major.rank or 0),
        )

    return build


def _incident_type(op: str) -> Callable[[Org], Case]:
    def build(org: Org) -> Case:
        ids = org.common(lambda i: i.incident_type.id if i.incident_type else None, 1)
        type_id = ids[0]
        if op == "one_of":
            return Case(
                IncidentFilter().incident_type(one_of=type_id),
                lambda i: i.incident_type is not None and i.incident_type.id == type_id,
            )
        return Case(
            IncidentFilter().incident_type(not_in=type_id),
            lambda i: i.incident_type is None or i.incident_type.id != type_id,
        )

    return build


def _role(op: str) -> Callable[[Org], Case]:
    def build(org: Org) -> Case:
        if op == "one_of":
            lead = org.role("lead")
            users = org.common(lambda i: assignee_id(i, lead.id), 3)
            return Case(
                IncidentFilter().incident_role(lead.id, one_of=users),
                lambda i: assignee_id(i, lead.id) in users,
            )
        comms = org.role("custom")
        blank = op == "is_blank_true"
        return Case(
            IncidentFilter().incident_role(comms.id, is_blank=blank),
            lambda i: (assignee_id(i, comms.id) is None) == blank,
        )

    return build


def _custom_field(op: str) -> Callable[[Org], Case]:
    def build(org: Org) -> Case:
        if op == "text_one_of":
            service = org.field("Affected service")

            def texts(i: Incident) -> set[str]:
                return {v.value_text for v in i.custom_field_values(service.id) if v.value_text}

            wanted = org.common(lambda i: min(texts(i), default=None), 2)
            return Case(
                IncidentFilter().custom_field(service.id, one_of=wanted),
                lambda i: bool(texts(i) & set(wanted)),
            )
        team = org.field("Team")
        ids = org.common(lambda i: min(option_ids(i, team.id), default=None), 2)
        if op == "one_of":
            return Case(
                IncidentFilter().custom_field(team.id, one_of=ids),
                lambda i: bool(option_ids(i, team.id) & set(ids)),
            )
        # not_in keeps incidents where the field is unset
        return Case(
            IncidentFilter().custom_field(team.id, not_in=ids),
            lambda i: not option_ids(i, team.id) & set(ids),
        )

    return build


def _mode(modes: tuple[str, ...]) -> Callable[[Org], Case]:
    def build(org: Org) -> Case:
        return Case(IncidentFilter().mode(one_of=modes), lambda i: True, frozenset(modes))

    return build


def _combined(org: Org) -> Case:
    """Different filters AND together; values inside one operator OR."""
    major, team = org.severity("Major"), org.field("Team")
    ids = org.common(lambda i: min(option_ids(i, team.id), default=None), 3)
    return Case(
        IncidentFilter()
        .status_category(one_of=["live", "learning", "closed"])
        .severity(gte=major.id)
        .custom_field(team.id, one_of=ids)
        .mode(one_of=["standard", "test"]),
        lambda i: (
            i.status_category in ("live", "learning", "closed")
            and i.severity is not None
            and (i.severity.rank or 0) >= (major.rank or 0)
            and bool(option_ids(i, team.id) & set(ids))
        ),
        frozenset({"standard", "test"}),
    )


def _any(org: Org) -> Case:
    """filter_mode=any ORs the filters; mode still scopes the result."""
    critical = org.severity("Critical")
    return Case(
        IncidentFilter()
        .status_category(one_of="triage")
        .severity(one_of=critical.id)
        .filter_mode("any"),
        lambda i: (
            i.status_category == "triage"
            or (i.severity is not None and i.severity.id == critical.id)
        ),
    )


def _oldest_first(org: Org) -> Case:
    return Case(
        IncidentFilter().status_category(not_in="closed").sort_by("created_at_oldest_first"),
        lambda i: i.status_category != "closed",
        order="oldest",
    )


FILTER_CASES: dict[str, Callable[[Org], Case]] = {
    "status-one_of": _status("one_of"),
    "status-not_in": _status("not_in"),
    "status_category-one_of": _category("one_of"),
    "status_category-not_in": _category("not_in"),
    "created_at-gte": _dates("created_at", "gte"),
    "created_at-lte": _dates("created_at", "lte"),
    "created_at-date_range": _dates("created_at", "date_range"),
    "updated_at-gte": _dates("updated_at", "gte"),
    "updated_at-lte": _dates("updated_at", "lte"),
    "updated_at-date_range": _dates("updated_at", "date_range"),
    "severity-one_of": _severity("one_of"),
    "severity-not_in": _severity("not_in"),
    "severity-gte": _severity("gte"),
    "severity-lte": _severity("lte"),
    "incident_type-one_of": _incident_type("one_of"),
    "incident_type-not_in": _incident_type("not_in"),
    "incident_role-one_of": _role("one_of"),
    "incident_role-is_blank-true": _role("is_blank_true"),
    "incident_role-is_blank-false": _role("is_blank_false"),
    "custom_field-one_of": _custom_field("one_of"),
    "custom_field-not_in": _custom_field("not_in"),
    "custom_field-text-one_of": _custom_field("text_one_of"),
    "mode-one_of-test-tutorial": _mode(("test", "tutorial")),
    "mode-one_of-standard-tutorial": _mode(("standard", "tutorial")),
    "combined-and": _combined,
    "filter_mode-any": _any,
    "sort_by-oldest_first": _oldest_first,
}


@pytest.fixture
def everything(client: IncidentIOClient) -> Org:
    """Every incident of every mode, unfiltered, and the catalog to pick filter values from."""
    return Org(
        incidents=tuple(client.iter_incidents(IncidentFilter().mode(one_of=ALL_MODES))),
        severities=tuple(client.list_severities()),
        statuses=tuple(client.list_incident_statuses()),
        types=tuple(client.list_incident_types()),
        roles=tuple(client.list_incident_roles()),
        fields=tuple(client.list_custom_fields()),
    )


@pytest.mark.parametrize("name", list(FILTER_CASES))
def test_filter_matches_brute_force(
    name: str, everything: Org, client: IncidentIOClient, org: SandboxControl
) -> None:
    """The incidents the client gets for a filter are exactly those brute force picks, in order."""
    assert len(everything.incidents) == 200
    assert {i.mode for i in everything.incidents} == set(ALL_MODES)
    case = FILTER_CASES[name](everything)
    scope = [i for i in everything.incidents if i.mode in case.modes]
    expected = [i.id for i in scope if case.matches(i)]
    if case.order == "oldest":
        expected.reverse()
    # a filter that keeps everything or nothing would prove little
    assert 0 < len(expected) < len(everything.incidents), name

    org.clear_requests()
    pages = list(client.iter_incident_pages(case.filter, page_size=FILTER_PAGE_SIZE))
    got = [i.id for page in pages for i in page.incidents]
    assert got == expected
    assert {page.total_record_count for page in pages} == {len(expected)}

    # the wire encoding round-trips: each logged query parses back into the same filter
    log = api_log(org, "/v2/incidents")
    assert len(log) == math.ceil(len(expected) / FILTER_PAGE_SIZE)
    for n, entry in enumerate(log):
        pairs = [(k, v) for k, v in entry["query_pairs"]]
        assert IncidentFilter.from_params(pairs) == case.filter
        paging = [(k, v) for k, v in pairs if k in ("page_size", "after")]
        assert [p for p in pairs if p not in paging] == case.filter.to_params()
        assert paging[0] == ("page_size", str(FILTER_PAGE_SIZE))
        assert (len(paging) == 2) == (n > 0)
        if n > 0:
            assert paging[1] == ("after", pages[n - 1].after)


def test_filter_cases_cover_every_operator() -> None:
    """Every operator the filter builder accepts has a brute-force case above."""
    from automations.incidentio.filters import _OPERATORS

    covered = {tuple(name.split("-")[:2]) for name in FILTER_CASES}
    for param, operators in _OPERATORS.items():
        for operator in operators:
            assert (param, operator) in covered, (param, operator)


# --- pagination: 10,000 incidents, each once, in the exact number of requests --------

TEN_K = 10_000


@dataclass
class Walk:
    pages: list[IncidentPage]
    log: list[dict[str, Any]]
    counted: int
    incident_ids: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def walk_10k(sandbox_server: SandboxThread) -> Walk:
    """One walk over 10,000 incidents (seeding and paging take ~3 s; done once per module)."""
    control = SandboxControl(sandbox_server.base_url)
    try:
        control.reset(incidents=TEN_K, api_key=SECRET)
        # A generous timeout: on a loaded machine a 5 s one retries a slow page, and the
        # request count below is about paging, not about retries.
        with make_client(control.base_url, timeout=60.0, retry_timeout=120.0) as api:
            pages = list(api.iter_incident_pages(IncidentFilter().mode(one_of=ALL_MODES)))
            counted = api.counter.total()
        log = api_log(control)
        control.reset()  # back to the small default organisation
    finally:
        control.close()
    ids = [i.id for page in pages for i in page.incidents]
    return Walk(pages, log, counted, ids)


def test_10k_each_incident_exactly_once(walk_10k: Walk) -> None:
    """All 10,000 arrive, none twice, newest first across page boundaries."""
    assert len(walk_10k.incident_ids) == TEN_K
    assert len(set(walk_10k.incident_ids)) == TEN_K
    created = [i.created_at for page in walk_10k.pages for i in page.incidents]
    assert created == sorted(created, reverse=True)
    assert {page.total_record_count for page in walk_10k.pages} == {TEN_K}


def test_10k_takes_exactly_ceil_n_over_250_requests(walk_10k: Walk) -> None:
    """40 requests: the sandbox omits ``after`` on the last (full) page, so no empty page."""
    expected = math.ceil(TEN_K / 250)
    assert len(walk_10k.pages) == expected
    assert len(walk_10k.log) == expected == walk_10k.counted
    assert [len(page.incidents) for page in walk_10k.pages] == [250] * expected
    assert walk_10k.pages[-1].after is None
    for n, entry in enumerate(walk_10k.log):
        query = dict(entry["query_pairs"])
        assert entry["status"] == 200
        assert query["page_size"] == "250"
        previous = walk_10k.pages[n - 1].incidents[-1].id if n else None
        assert query.get("after") == previous


def test_partial_last_page(client: IncidentIOClient, org: SandboxControl) -> None:
    """With a page size that does not divide the total, the short last page ends the walk."""
    org.clear_requests()
    pages = list(client.iter_incident_pages(page_size=7))
    total = pages[0].total_record_count
    assert total is not None
    assert total % 7
    ids = [i.id for page in pages for i in page.incidents]
    assert len(ids) == len(set(ids)) == total
    assert len(api_log(org)) == len(pages) == math.ceil(total / 7)
    assert {i.mode for page in pages for i in page.incidents} <= DEFAULT_MODES
