"""Durations: the forms users write, and a clear error for anything else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from automations.durations import format_duration, human_moment, human_span, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1w2d", timedelta(days=9)),
        (" 45m ", timedelta(minutes=45)),
    ],
)
def test_parse_valid(text: str, expected: timedelta) -> None:
    """Each accepted form gives the right timedelta."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["2 hours", "", "h", "1.5h", "30m1h", "-5m", "0s", "10", "1H"])
def test_parse_invalid_names_the_value_and_the_forms(text: str) -> None:
    """Anything else is refused with the value and the accepted forms in the message."""
    with pytest.raises(ValueError, match="like 90s, 15m, 2h, 7d"):
        parse_duration(text)


def test_format_round_trips() -> None:
    """format_duration gives a string parse_duration reads back."""
    for text in ["90s", "2h", "1d2h3m4s"]:
        assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)
    assert format_duration(timedelta(seconds=90)) == "1m30s"


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=59), "<1m"),
        (timedelta(seconds=-5), "<1m"),
        (timedelta(minutes=12, seconds=59), "12m"),
        (timedelta(hours=2), "2h"),
        (timedelta(hours=2, minutes=5, seconds=40), "2h 5m"),
        (timedelta(hours=23, minutes=59, seconds=59), "23h 59m"),
        (timedelta(days=1), "1d"),
        (timedelta(days=51, hours=3, minutes=31, seconds=58), "51d 3h"),
    ],
)
def test_human_span_reads_as_a_person_writes_it(delta: timedelta, text: str) -> None:
    """Days and hours from a day up, hours and minutes below, never seconds, never overstated."""
    assert human_span(delta) == text


def test_human_moment_gives_the_date_only_when_it_is_not_today() -> None:
    """A moment on the same UTC day is a time; another day adds the date; another year the year."""
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert human_moment(datetime(2026, 11, 24, 9, 12, 30, tzinfo=UTC), now) == "09:12 UTC"
    assert human_moment(datetime(2026, 11, 23, 3, 10, tzinfo=UTC), now) == "23 Nov 03:10 UTC"
    assert human_moment(datetime(2025, 12, 31, 23, 0, tzinfo=UTC), now) == "31 Dec 2025 23:00 UTC"
    paris = timezone(timedelta(hours=1))
    assert human_moment(datetime(2026, 11, 24, 10, 12, tzinfo=paris), now) == "09:12 UTC"
