"""Cron expressions mean what crontab(5) says, for rules and digests alike.

Weekday numbers (0 and 7 are Sunday), names, ranges, lists and steps; the
rule that a day matching either a restricted day-of-month or a restricted
day-of-week fires; the @ nicknames; and what is refused at load time, with
the key's path: fields crontab(5) does not have, and a cron that never fires.
Dates here are fixed on purpose: occurrences are a pure function of them.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from automations.config import load_config
from automations.daemon import Daemon
from automations.errors import ConfigError
from automations.schedules import CronSchedule
from tests.engine_harness import Harness

UTC_ZONE = ZoneInfo("UTC")
MONDAY = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday; two weeks from it hold every weekday twice
NAMES = list(calendar.day_abbr)  # Mon ... Sun
ALL = set(NAMES)


def _days_fired(cron: str, start: datetime, days: int) -> list[date]:
    found = CronSchedule(cron, UTC_ZONE).occurrences(start, start + timedelta(days=days))
    return [moment.date() for moment in found]


def _weekdays(day_of_week: str) -> set[str]:
    return {NAMES[d.weekday()] for d in _days_fired(f"0 8 * * {day_of_week}", MONDAY, 14)}


WEEKDAY_FORMS = [
    ("0", {"Sun"}),
    ("7", {"Sun"}),
    ("1", {"Mon"}),
    ("6", {"Sat"}),
    ("1-5", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
    ("0-6", ALL),
    ("1-7", ALL),
    ("5-7", {"Fri", "Sat", "Sun"}),
    ("0,6", {"Sat", "Sun"}),
    ("*", ALL),
    ("*/2", {"Sun", "Tue", "Thu", "Sat"}),
    ("1-5/2", {"Mon", "Wed", "Fri"}),
    ("0/3", {"Sun", "Wed", "Sat"}),
    ("mon-fri", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
    ("MON-Fri", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
    ("sun", {"Sun"}),
    ("sat,sun", {"Sat", "Sun"}),
    ("sat-sun", {"Sat", "Sun"}),
    ("fri-sun", {"Fri", "Sat", "Sun"}),
    ("mon,3,fri", {"Mon", "Wed", "Fri"}),
    ("tue-4", {"Tue", "Wed", "Thu"}),
    ("sun-3", {"Sun", "Mon", "Tue", "Wed"}),
    ("1-2,fri-7", {"Mon", "Tue", "Fri", "Sat", "Sun"}),
]


@pytest.mark.parametrize(("day_of_week", "expected"), WEEKDAY_FORMS)
def test_day_of_week_fires_on_the_days_crontab_names(day_of_week: str, expected: set[str]) -> None:
    """0 and 7 are Sunday, 1-5 is Monday to Friday; names, ranges, lists and steps mix."""
    assert _weekdays(day_of_week) == expected


def test_a_numeric_weekday_fires_at_its_time_on_that_day() -> None:
    """'0 8 * * 1-5' from a Saturday: Monday 08:00 first, never Saturday."""
    saturday = datetime(2026, 11, 7, 9, 0, tzinfo=UTC)
    schedule = CronSchedule("0 8 * * 1-5", UTC_ZONE)
    assert schedule.next_after(saturday) == datetime(2026, 11, 9, 8, 0, tzinfo=UTC_ZONE)
    assert schedule.next_after(saturday - timedelta(days=1, hours=2)) == datetime(
        2026, 11, 6, 8, 0, tzinfo=UTC_ZONE
    )


def test_a_day_matching_either_restricted_day_field_fires() -> None:
    """Both day fields restricted: the 13th OR a Friday fires (crontab(5)), not only Friday 13th."""
    start = datetime(2026, 2, 1, tzinfo=UTC)  # February and March 2026: Friday 13th in both
    days = [start.date() + timedelta(days=n) for n in range(59)]
    fridays = {d for d in days if d.weekday() == 4}
    thirteenths = {d for d in days if d.day == 13}

    assert set(_days_fired("0 8 13 * 5", start, 59)) == fridays | thirteenths
    assert set(_days_fired("0 8 13 * fri", start, 59)) == fridays | thirteenths
    assert set(_days_fired("0 8 13 * *", start, 59)) == thirteenths
    assert set(_days_fired("0 8 * * 5", start, 59)) == fridays


def test_a_star_in_either_day_field_means_both_must_match() -> None:
    """A day field starting with * (such as */2) is not 'restricted': odd days that are Fridays."""
    start = datetime(2026, 2, 1, tzinfo=UTC)
    got = set(_days_fired("0 8 */2 * 5", start, 59))
    days = [start.date() + timedelta(days=n) for n in range(59)]
    assert got == {d for d in days if d.weekday() == 4 and d.day % 2 == 1}
    assert set(_days_fired("0 8 1-7 * */7", start, 59)) == {date(2026, 2, 1), date(2026, 3, 1)}


@pytest.mark.parametrize(
    ("nickname", "same_as"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
    ],
)
def test_nicknames_are_the_crontab_ones(nickname: str, same_as: str) -> None:
    """@daily and friends fire exactly when their five-field equivalents do."""
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 3, 1, tzinfo=UTC)
    expected = CronSchedule(same_as, UTC_ZONE).occurrences(start, end)
    assert CronSchedule(nickname, UTC_ZONE).occurrences(start, end) == expected
    assert expected


def test_rules_and_digests_share_one_meaning(harness: Harness) -> None:
    """The daemon's job for a rule and for a digest, both '0 8 * * 0' in London, fire on Sunday."""
    harness.write(
        '[[rules]]\nname = "sunday"\ntype = "escalate_severity"\ncron = "0 8 * * 0"\n'
        'timezone = "Europe/London"\nsteps = [ { after = "2h", to = "Major" } ]\n\n'
        '[smtp]\nhost = "127.0.0.1"\nsecurity = "none"\nsender = "Bot <bot@example.com>"\n\n'
        '[[digests]]\nname = "weekly"\ncron = "0 8 * * 0"\ntimezone = "Europe/London"\n'
        'to = ["oncall@example.com"]\n'
    )
    runtime = harness.runtime()
    try:
        daemon = Daemon(runtime)
        daemon.add_jobs()
        jobs = {job.id: job for job in daemon.scheduler.get_jobs()}
        saturday = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
        sunday_8 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)  # GMT: London is UTC
        rule = jobs["cron 0 8 * * 0 Europe/London"].trigger.get_next_fire_time(None, saturday)
        digest = jobs["digest weekly"].trigger.get_next_fire_time(None, saturday)
    finally:
        runtime.close()
    assert sunday_8 <= rule <= sunday_8 + timedelta(seconds=daemon.jitter_seconds)
    assert digest == sunday_8


# --- refused when the file is read ---------------------------------------------------------

RULE = """
[[rules]]
name = "esc"
type = "escalate_severity"
cron = "{cron}"
timezone = "Europe/London"
steps = [ {{ after = "2h", to = "Major" }} ]
"""
DIGEST = """
[smtp]
host = "smtp.example.com"
sender = "Incident Bot <incidents@example.com>"

[[digests]]
name = "daily"
cron = "{cron}"
timezone = "Europe/London"
to = ["oncall@example.com"]
"""


def _load_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "automations.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value)
    return str(caught.value)


REFUSED = [
    ("0 8 * * 8", ["is not a cron expression", "day of week '8'", "0-7 (0 and 7 are Sunday)"]),
    ("61 * * * *", ["is not a cron expression", "minute '61'", "0-59"]),
    ("0 24 * * *", ["is not a cron expression", "hour '24'", "0-23"]),
    ("0 8 0 * *", ["is not a cron expression", "day of month '0'", "1-31"]),
    ("0 8 * 13 *", ["is not a cron expression", "month '13'", "1-12 or jan-dec"]),
    ("0 8 * * 5-1", ["is not a cron expression", "day of week '5-1'", "sun-sat"]),
    ("0 8 * * 1/0", ["is not a cron expression", "day of week '1/0'", "0-7"]),
    ("0 8 L * *", ["is not a cron expression", "day of month 'L'", "1-31"]),
    ("0 8 * * 5#2", ["is not a cron expression", "day of week '5#2'", "0-7"]),
    ("0 8 ? * 1", ["is not a cron expression", "day of month '?'", "1-31"]),
    ("0 0 8 * * *", ["it has 6 fields", "minute hour day-of-month month day-of-week"]),
    ("@reboot", ["is not a cron expression", "@reboot is not a schedule", "@hourly, @daily"]),
    ("@fortnightly", ["@fortnightly is not a schedule", "@hourly, @daily"]),
    # A cron that never fires (the Low item): refused, saying so.
    ("0 0 30 2 *", ["'0 0 30 2 *' never fires", "February has no day 30"]),
    ("0 0 31 4 *", ["'0 0 31 4 *' never fires", "April has no day 31"]),
    ("0 0 31 4,6,9,11 *", ["never fires", "April, June, September and November have no day 31"]),
    ("0 0 30-31 feb *", ["never fires", "February has no day 30"]),
    ("0 0 31 2 */2", ["never fires", "February has no day 31"]),
]


@pytest.mark.parametrize(("cron", "fragments"), REFUSED, ids=[cron for cron, _ in REFUSED])
def test_a_rule_cron_crontab_would_refuse_is_refused(
    tmp_path: Path, cron: str, fragments: list[str]
) -> None:
    """A clear ConfigError naming rules[0].cron, the cron, and what is wrong or allowed."""
    message = _load_error(tmp_path, RULE.format(cron=cron))
    assert f"rules[0].cron: '{cron}' " in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("cron", ["0 0 30 2 *", "0 0 31 4 *", "0 8 * * 8", "0 8 L * *"])
def test_a_digest_cron_is_checked_the_same_way(tmp_path: Path, cron: str) -> None:
    """Digests share the check: the key path is digests[0].cron."""
    message = _load_error(tmp_path, DIGEST.format(cron=cron))
    assert f"digests[0].cron: '{cron}' " in message


@pytest.mark.parametrize(
    "cron",
    [
        "0 0 29 2 *",  # every leap year
        "0 0 31 2 1",  # both day fields restricted: every Monday in February
        "0 0 30 1-3 *",  # January and March have a 30th
        "0 8 * * 7",
        "*/5 * * * *",
        "0 8 * * mon-fri",
        "@daily",
    ],
)
def test_crons_that_fire_are_accepted(tmp_path: Path, cron: str) -> None:
    """Rare but real schedules load, for rules and for digests."""
    for text in (RULE, DIGEST):
        path = tmp_path / "automations.toml"
        path.write_text(text.format(cron=cron))
        load_config(path)
