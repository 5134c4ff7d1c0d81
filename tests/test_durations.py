"""Durations: the forms users write, and a clear error for anything else."""

from __future__ import annotations

from datetime import timedelta

import pytest

from automations.durations import format_duration, parse_duration


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
