"""IncidentFilter: the exact query encoding, canonical equality, round trips and validation."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from automations.incidentio import IncidentFilter, StatusCategory
from tests.openapi_conformance import Conformance

F = IncidentFilter()

# Each filter with its exact encoding; most are the examples of the endpoint's
# description in the schema and docs/incident-io-api.md section 4.
EXACT = [
    (F.status(one_of="ABC"), "status[one_of]=ABC"),
    (F.status(not_in=["ABC"]), "status[not_in]=ABC"),
    (F.created_at(lte=date(2021, 1, 2)), "created_at[lte]=2021-01-02"),
    (F.created_at(gte="2024-05-01"), "created_at[gte]=2024-05-01"),
    (
        F.created_at(date_range=(date(2024, 12, 2), date(2024, 12, 8))),
        "created_at[date_range]=2024-12-02~2024-12-08",
    ),
    (F.updated_at(gte=datetime(2024, 5, 1, 9, tzinfo=UTC)), "updated_at[gte]=2024-05-01"),
    (F.status_category(one_of="live"), "status_category[one_of]=live"),
    (F.status_category(not_in=StatusCategory.LIVE), "status_category[not_in]=live"),
    (
        F.status_category(one_of=["live", "learning"]),
        "status_category[one_of]=learning&status_category[one_of]=live",
    ),
    (F.severity(one_of="ABC"), "severity[one_of]=ABC"),
    (F.severity(gte="ABC"), "severity[gte]=ABC"),
    (F.severity(lte="ABC"), "severity[lte]=ABC"),
    (F.incident_type(one_of="ABC"), "incident_type[one_of]=ABC"),
    (F.incident_type(not_in="ABC"), "incident_type[not_in]=ABC"),
    (
        F.mode(one_of=["standard", "retrospective", "test", "tutorial"]),
        "mode[one_of]=retrospective&mode[one_of]=standard&mode[one_of]=test&mode[one_of]=tutorial",
    ),
    (F.mode(one_of="test"), "mode[one_of]=test"),
    (F.incident_role("ABC", is_blank=True), "incident_role[ABC][is_blank]=true"),
    (F.incident_role("ABC", is_blank=False), "incident_role[ABC][is_blank]=false"),
    (
        F.incident_role("ABC", one_of=["U1", "U2"]),
        "incident_role[ABC][one_of]=U1&incident_role[ABC][one_of]=U2",
    ),
    (F.custom_field("ABC", one_of="XYZ"), "custom_field[ABC][one_of]=XYZ"),
    (F.custom_field("ABC", not_in="XYZ"), "custom_field[ABC][not_in]=XYZ"),
    (F.sort_by("created_at_oldest_first"), "sort_by=created_at_oldest_first"),
    (F.filter_mode("any"), "filter_mode=any"),
    (F, ""),
]

COMBINED = (
    F.status_category(one_of=["live", "learning"])
    .severity(one_of=["S1", "S2"])
    .severity(gte="S1")
    .created_at(gte=date(2024, 1, 1), lte=date(2024, 2, 1))
    .updated_at(date_range=("2024-01-01", "2024-01-31"))
    .incident_type(not_in="T1")
    .incident_role("R1", is_blank=True)
    .incident_role("R2", one_of="U1")
    .custom_field("F1", one_of=["O1", "O2"])
    .custom_field("F2", not_in="O3")
    .mode(one_of=["standard", "test"])
    .sort_by("created_at_newest_first")
    .filter_mode("any")
)
ROUND_TRIP = [f for f, _ in EXACT] + [COMBINED, F.status(one_of="A", not_in="B")]


@pytest.mark.parametrize(("query", "expected"), EXACT, ids=[e or "empty" for _, e in EXACT])
def test_exact_encoding(query: IncidentFilter, expected: str) -> None:
    """Bracketed operators, one key per value, nested role/custom field keys, YYYY-MM-DD dates."""
    assert query.key() == expected
    assert "&".join(f"{k}={v}" for k, v in query.to_params()) == expected


def test_repeated_keys_not_joined_values() -> None:
    """Multiple values repeat the key; they are never comma-joined or indexed."""
    assert F.status_category(one_of=["live", "learning"]).to_params() == [
        ("status_category[one_of]", "learning"),
        ("status_category[one_of]", "live"),
    ]


@pytest.mark.parametrize("query", ROUND_TRIP, ids=lambda f: f.key() or "empty")
def test_every_encoding_matches_the_schema(openapi: Conformance, query: IncidentFilter) -> None:
    """The encoded query is one the real API's parameters accept."""
    openapi.validate_request("GET", "/v2/incidents", [*query.to_params(), ("page_size", "250")])


@pytest.mark.parametrize("query", ROUND_TRIP, ids=lambda f: f.key() or "empty")
def test_round_trip(query: IncidentFilter) -> None:
    """from_params(to_params()) gives an equal filter, with the same hash and key."""
    again = IncidentFilter.from_params(query.to_params())
    assert again == query
    assert hash(again) == hash(query)
    assert again.key() == query.key()


def test_from_params_ignores_pagination_and_accepts_any_order() -> None:
    """A captured request's query parses back to its filter."""
    pairs = [
        ("page_size", "250"),
        ("status_category[one_of]", "live"),
        ("after", "01H"),
        ("custom_field[F1][one_of]", "O2"),
        ("status_category[one_of]", "learning"),
        ("custom_field[F1][one_of]", "O1"),
    ]
    assert IncidentFilter.from_params(pairs) == F.custom_field(
        "F1", one_of=["O1", "O2"]
    ).status_category(one_of=["learning", "live"])


def test_equal_questions_are_equal_filters() -> None:
    """Order of calls and of values, and duplicates, do not change the filter."""
    a = (
        F.status_category(one_of=["live", "learning"])
        .severity(gte="S1")
        .custom_field("F", one_of="O")
    )
    b = (
        F.custom_field("F", one_of=["O", "O"])
        .severity(gte="S1")
        .status_category(one_of=["learning", "live", "live"])
    )
    assert a == b
    assert hash(a) == hash(b)
    assert a.key() == b.key()
    assert len({a, b, F.status_category(one_of="live")}) == 2
    assert a != a.severity(gte="S2")


def test_filters_are_immutable() -> None:
    """Each method returns a new filter; the original is untouched and cannot be assigned."""
    base = F.status_category(one_of="live")
    narrowed = base.severity(one_of="S1")
    assert base.key() == "status_category[one_of]=live"
    assert narrowed.key() == "severity[one_of]=S1&status_category[one_of]=live"
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.conditions = ()  # type: ignore[misc]


def test_operators_merge_and_replace() -> None:
    """Different operators on one param combine; the same operator set again replaces."""
    query = F.severity(one_of="S1").severity(gte="S2").severity(one_of=["S3"])
    assert query.key() == "severity[gte]=S2&severity[one_of]=S3"
    assert F.sort_by("created_at_oldest_first").sort_by("created_at_newest_first").key() == (
        "sort_by=created_at_newest_first"
    )


def test_datetimes_become_utc_dates() -> None:
    """A datetime bound is the UTC date it falls on; a naive one is taken as is."""
    east = timezone(timedelta(hours=2))
    west = timezone(timedelta(hours=-5))
    assert F.created_at(gte=datetime(2024, 5, 1, 1, 30, tzinfo=east)).key() == (
        "created_at[gte]=2024-04-30"
    )
    assert F.created_at(lte=datetime(2024, 5, 1, 22, tzinfo=west)).key() == (
        "created_at[lte]=2024-05-02"
    )
    assert F.created_at(lte=datetime(2024, 5, 1, 22)).key() == "created_at[lte]=2024-05-01"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: F.status_category(one_of="active"), "the app's 'Active' is 'live'"),
        (lambda: F.status_category(not_in=["live", "resolved"]), "'resolved' is not a status"),
        (lambda: F.mode(one_of="stream"), "'stream' is not a mode"),
        (lambda: F.status(one_of=[]), r"status\[one_of\]: needs at least one value"),
        (lambda: F.status(), "give at least one operator"),
        (lambda: F.status(one_of=[""]), "non-empty strings"),
        (lambda: F.status(one_of=[1]), "non-empty strings"),  # type: ignore[list-item]
        (lambda: F.severity(gte=["A", "B"]), "exactly one value"),  # type: ignore[arg-type]
        (lambda: F.created_at(gte="2024/05/01"), "expected a date like 2024-05-01"),
        (lambda: F.created_at(gte="2024-05-01T10:00:00"), "expected a date"),
        (lambda: F.created_at(gte=1714521600), "expected a date"),  # type: ignore[arg-type]
        (lambda: F.created_at(date_range=(date(2024, 2, 1), date(2024, 1, 1))), "is after end"),
        (lambda: F.created_at(date_range=(date(2024, 2, 1),)), r"give \(start, end\)"),  # type: ignore[arg-type]
        (lambda: F.incident_role("R[1]", is_blank=True), "not a usable ID"),
        (lambda: F.incident_role("R", is_blank="yes"), "must be True or False"),  # type: ignore[arg-type]
        (lambda: F.custom_field("", one_of="O"), "not a usable ID"),
        (lambda: F.sort_by("newest"), "not one of created_at_newest_first"),
        (lambda: F.filter_mode("some"), "not one of all, any"),
    ],
)
def test_invalid_filters_fail_at_build_time(build: object, message: str) -> None:
    """Mistakes raise ValueError with a message naming the param and the valid choices."""
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("status[is]", "A")], "unknown operator 'is'"),
        ([("severity[between]", "A")], "unknown operator"),
        ([("priority[one_of]", "A")], "unknown filter key"),
        ([("status", "A")], "unknown filter key"),
        ([("custom_field[F1]", "A")], "unknown filter key"),
        ([("status[one_of][x]", "A")], "unknown filter key"),
        ([("status_category[one_of", "live")], "malformed filter key"),
        ([("incident_role[R][is_blank]", "maybe")], "expected true or false"),
        ([("incident_role[R][is_set]", "true")], "unknown operator 'is_set'"),
        ([("created_at[date_range]", "2024-01-01")], "expected START~END"),
        ([("created_at[gte]", "2024-01-01"), ("created_at[gte]", "2024-01-02")], "exactly one"),
        ([("sort_by", "a"), ("sort_by", "b")], "exactly one value"),
        ([("status_category[one_of]", "active")], "not a status category"),
    ],
)
def test_from_params_rejects_what_the_api_would(pairs: list[tuple[str, str]], message: str) -> None:
    """Parsing validates like building (the sandbox can answer 422 from the message)."""
    with pytest.raises(ValueError, match=message):
        IncidentFilter.from_params(pairs)


def test_describe_for_logs() -> None:
    """describe() reads as a sentence in a log line."""
    assert F.describe() == "all incidents (standard and retrospective)"
    query = (
        F.status_category(one_of=["live", "learning"])
        .severity(gte="S1")
        .incident_role("R1", is_blank=True)
        .created_at(date_range=(date(2024, 1, 1), date(2024, 1, 31)))
    )
    assert query.describe() == (
        "created_at between 2024-01-01 and 2024-01-31 and incident_role R1 unassigned"
        " and severity >= S1 and status_category one of learning, live"
    )
    assert "or" in F.status(one_of="A").mode(one_of="test").filter_mode("any").describe()
    assert repr(F.status(one_of="A")) == "IncidentFilter('status[one_of]=A')"
