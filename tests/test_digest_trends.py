"""The trends section: periods, cadence, bars, medians, wording, and the chart end to end."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from automations.digest.config import DEFAULT_SUBJECT, DigestOptions
from automations.digest.content import DigestData, build_digest
from automations.digest.render import Renderer
from automations.digest.trends import (
    TrendWindow,
    build_trends,
    cadence,
    compare,
    period_bounds,
    trend_unit,
    trend_window,
    widths,
)
from automations.incidentio import Incident
from automations.schedules import CronSchedule
from tests.digest_support import Clock, SMTPServer, make_incident, open_digests, write_config
from tests.factories import CATALOG, NOW
from tests.sandbox_server import SandboxControl

LONDON = ZoneInfo("Europe/London")
# The clocks went back at 02:00 BST on Sunday 25 October 2026: that day is 25 hours long.
AFTER_FALL_BACK = datetime(2026, 10, 27, 9, 30, tzinfo=UTC)


def local_midnight(day: date, zone: ZoneInfo = LONDON) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def options(cron: str, **extra: object) -> DigestOptions:
    return DigestOptions.model_validate(
        {"name": "ops", "cron": cron, "timezone": "Europe/London", "to": ["a@example.com"]} | extra
    )


def digest_of(incidents: list[Incident], window: TrendWindow, **kwargs: object) -> DigestData:
    return build_digest(
        name="ops",
        timezone="Europe/London",
        incidents=incidents,
        catalog=CATALOG,
        events=[],
        now=window.end,
        window_start=window.end - timedelta(days=1),
        window_end=window.end,
        sections=("figures", "trends"),
        trend=window,
        **kwargs,  # type: ignore[arg-type]
    )


# --- periods -------------------------------------------------------------------------------


def test_days_start_at_local_midnight_and_the_last_one_holds_the_end() -> None:
    """Seven days, each from local midnight; the last is today, cut at the window's end."""
    periods = period_bounds("day", LONDON, NOW, 7)
    assert len(periods) == 7
    assert periods[-1] == (local_midnight(date(2026, 11, 23)), NOW)
    assert periods[0][0] == local_midnight(date(2026, 11, 17))
    for (_, stop), (start, _) in itertools.pairwise(periods):
        assert stop == start  # contiguous: nothing counted twice or missed


def test_a_dst_change_makes_a_25_hour_day_not_a_shifted_label() -> None:
    """Europe/London falls back on 25 Oct: that day is 25 h, every day still starts at 00:00."""
    periods = period_bounds("day", LONDON, AFTER_FALL_BACK, 7)
    starts = [start.astimezone(LONDON) for start, _ in periods]
    assert [s.time() for s in starts] == [time(0)] * 7
    assert [s.day for s in starts] == [21, 22, 23, 24, 25, 26, 27]
    lengths = {start.astimezone(LONDON).day: stop - start for start, stop in periods[:-1]}
    assert lengths[25] == timedelta(hours=25)
    assert lengths[24] == lengths[26] == timedelta(hours=24)


def test_weeks_start_on_monday_across_a_dst_change() -> None:
    """Eight weeks from Monday 00:00 local; the week holding 25 Oct is 169 hours long."""
    periods = period_bounds("week", LONDON, AFTER_FALL_BACK, 8)
    starts = [start.astimezone(LONDON) for start, _ in periods]
    assert all(s.weekday() == 0 and s.time() == time(0) for s in starts)
    assert starts[-1].date() == date(2026, 10, 26)
    week_of_change = next(p for p in periods if p[0].astimezone(LONDON).day == 19)
    assert week_of_change[1] - week_of_change[0] == timedelta(hours=169)


def test_a_window_ending_at_midnight_ends_with_the_day_before() -> None:
    """The end is exclusive: a digest at 00:00 shows the day that just ended, not an empty one."""
    midnight = local_midnight(date(2026, 11, 23))
    periods = period_bounds("day", LONDON, midnight, 7)
    assert periods[-1] == (local_midnight(date(2026, 11, 22)), midnight)


def test_trend_span_and_the_comparison_window() -> None:
    """The window spans its periods up to the end; the comparison is the same span just before."""
    window = trend_window(options("0 8 * * mon-fri"), NOW)
    start, end, periods = window.start, window.end, window.periods
    assert (start, end) == (periods[0][0], NOW)
    assert window.previous == (local_midnight(date(2026, 11, 10)), start)
    assert window.since == window.previous[0]


# --- cadence ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("* * * * *", "daily"),  # the demo's
        ("0 8 * * mon-fri", "daily"),
        ("0 8 * * mon,thu", "daily"),
        ("0 8 * * mon", "weekly"),
        ("30 17 * * fri", "weekly"),
        ("0 9 1 * *", "weekly"),  # monthly: a week or more apart
    ],
)
def test_weekly_or_daily_from_the_cron(cron: str, expected: str) -> None:
    """Fires a week or more apart make a weekly digest; anything closer a daily one."""
    assert cadence(CronSchedule(cron, LONDON), NOW) == expected


def test_a_weekly_cron_across_dst_is_still_weekly() -> None:
    """Monday 08:00 London across the spring change is 6d 23h apart in UTC: still weekly."""
    spring = datetime(2026, 4, 1, tzinfo=UTC)
    assert cadence(CronSchedule("0 8 * * mon", LONDON), spring) == "weekly"
    assert cadence(CronSchedule("0 8 * * mon", LONDON), AFTER_FALL_BACK) == "weekly"


def test_trend_period_overrides_the_cron() -> None:
    """trend_period = "week" on a daily cron shows weeks; "day" on a weekly cron shows days."""
    assert trend_unit(options("0 8 * * *"), NOW) == "day"
    assert trend_unit(options("0 8 * * *", trend_period="week"), NOW) == "week"
    assert trend_unit(options("0 8 * * mon"), NOW) == "week"
    assert trend_unit(options("0 8 * * mon", trend_period="day"), NOW) == "day"
    assert len(trend_window(options("0 8 * * mon"), NOW).periods) == 8


def test_trend_period_refuses_other_values() -> None:
    """A trend_period that is not auto, day or week is a validation error naming the choices."""
    with pytest.raises(ValueError, match="'auto', 'day' or 'week'"):
        options("0 8 * * *", trend_period="month")


# --- figures -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "counts",
    [[1, 1, 1], [3, 0, 4], [7, 13, 2, 9], [1] * 9, [0, 0, 0], [199, 1], [1, 1, 1, 0]],
)
def test_bar_widths_never_exceed_100_percent(counts: list[int]) -> None:
    """Rounded on the running total: the widest bar is exactly 100%, none is more."""
    for widest in (sum(counts), sum(counts) + 5, 3 * sum(counts)):
        parts = widths(counts, widest)
        assert sum(parts) <= 100
        assert all(p >= 0 for p in parts)
        if widest and widest == sum(counts):
            assert sum(parts) == 100


def in_the_morning(day: date) -> datetime:
    return datetime.combine(day, time(9), tzinfo=LONDON).astimezone(UTC)


def opened_on(day: date, severity: str | None, number: int, **kwargs: object) -> Incident:
    """An incident created at 09:00 (London) on ``day``."""
    return make_incident(
        f"Incident {number}",
        age=NOW - in_the_morning(day),
        severity=severity,
        number=number,
        **kwargs,  # type: ignore[arg-type]
    )


def resolved_on(day: date, after: timedelta, number: int) -> Incident:
    """An incident resolved at 09:00 on ``day``, ``after`` its creation."""
    return make_incident(
        f"Resolved {number}",
        age=NOW - in_the_morning(day) + after,
        status="Documenting",
        resolved_after=after,
        number=number,
    )


def test_counts_by_severity_median_and_empty_days() -> None:
    """Opened per day by severity, the lower median per day, empty days shown as empty."""
    window = trend_window(options("0 8 * * *"), NOW)
    monday = date(2026, 11, 23)
    friday = date(2026, 11, 20)
    incidents = [
        opened_on(monday, "Critical", 1),
        opened_on(monday, "Minor", 2),
        opened_on(monday, "Minor", 3),
        opened_on(friday, None, 4),
        resolved_on(friday, timedelta(hours=1), 5),
        resolved_on(friday, timedelta(hours=3), 6),
        resolved_on(friday, timedelta(hours=2), 7),
        resolved_on(friday, timedelta(hours=9), 8),
    ]
    trends = digest_of(incidents, window).trends
    assert trends is not None
    rows = {row.start.astimezone(LONDON).date(): row for row in trends.rows}
    today = rows[monday]
    assert [(s.severity, s.count) for s in today.segments] == [("Critical", 1), ("Minor", 2)]
    assert today.label == "Mon 23 Nov"
    busiest = max(row.opened for row in trends.rows)
    assert sum(s.width for s in rows[friday].segments) == round(rows[friday].opened * 100 / busiest)
    assert rows[friday].resolved == 4
    assert rows[friday].median == timedelta(hours=2)  # lower median of 1, 2, 3, 9 hours
    empty = rows[date(2026, 11, 18)]
    assert (empty.opened, empty.segments, empty.spare, empty.median) == (0, (), 100, None)
    assert empty.text_bar == ""
    assert [name for name, _ in trends.legend] == ["Critical", "Minor", "No severity"]


def test_private_and_test_incidents_do_not_count() -> None:
    """The digest's audience applies: private and test incidents are left out of the bars."""
    window = trend_window(options("0 8 * * *"), NOW)
    monday = date(2026, 11, 23)
    incidents = [
        opened_on(monday, "Major", 1),
        opened_on(monday, "Critical", 2, private=True),
        opened_on(monday, "Critical", 3, mode="test"),
    ]
    trends = digest_of(incidents, window).trends
    assert trends is not None
    assert trends.rows[-1].opened == 1
    assert [name for name, _ in trends.legend] == ["Major"]
    everyone = digest_of(incidents, window, include_private=True, include_test=True).trends
    assert everyone is not None
    assert everyone.rows[-1].opened == 3


def test_comparison_with_the_previous_window() -> None:
    """Opened and median compared with the same span just before, in words."""
    window = trend_window(options("0 8 * * *"), NOW)
    now_days = [date(2026, 11, 23) - timedelta(days=k) for k in range(3)]
    before_days = [date(2026, 11, 12), date(2026, 11, 13)]
    incidents = [opened_on(day, "Minor", 10 + i) for i, day in enumerate(now_days)]
    incidents += [opened_on(day, "Minor", 20 + i) for i, day in enumerate(before_days)]
    incidents += [
        resolved_on(date(2026, 11, 21), timedelta(hours=2, minutes=5), 30),
        resolved_on(date(2026, 11, 11), timedelta(hours=2, minutes=35), 31),
    ]
    trends = digest_of(incidents, window).trends
    assert trends is not None
    assert (trends.opened, trends.previous_opened) == (4, 3)
    assert trends.comparison == (
        "4 opened, 1 more than the previous 7 days; median time to resolve 2h 5m, 30m faster"
    )


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (
            (12, 8, timedelta(hours=2, minutes=5), timedelta(hours=2, minutes=35)),
            "12 opened, 4 more than the previous 7 days; median time to resolve 2h 5m, 30m faster",
        ),
        (
            (3, 5, timedelta(hours=3), timedelta(hours=1)),
            "3 opened, 2 fewer than the previous 7 days; median time to resolve 3h, 2h slower",
        ),
        (
            (4, 4, timedelta(minutes=40), timedelta(minutes=40, seconds=20)),
            "4 opened, as many as the previous 7 days; median time to resolve 40m, as before",
        ),
        (
            (2, 0, timedelta(minutes=12), None),
            "2 opened, 2 more than the previous 7 days; median time to resolve 12m "
            "(none resolved before)",
        ),
        ((0, 0, None, None), "0 opened, as many as the previous 7 days; none resolved"),
    ],
)
def test_comparison_wording(
    args: tuple[int, int, timedelta | None, timedelta | None], text: str
) -> None:
    """More/fewer/as many; faster/slower/as before; nothing resolved said plainly."""
    assert compare("7 days", *args) == text


def test_no_incidents_at_all() -> None:
    """Every period empty: zero rows, no legend, nothing divided by zero."""
    window = trend_window(options("0 8 * * mon"), NOW)
    trends = build_trends([], window)
    assert [row.opened for row in trends.rows] == [0] * 8
    assert trends.legend == ()
    assert trends.comparison == "0 opened, as many as the previous 8 weeks; none resolved"


# --- subject -------------------------------------------------------------------------------


def test_default_subject_names_the_digest_and_its_period() -> None:
    """Daily: the day it is for; weekly: the seven days before the day it is sent."""
    window = trend_window(options("0 8 * * *"), NOW)
    renderer = Renderer("digest", LONDON)
    daily = renderer.render(digest_of([], window), DEFAULT_SUBJECT, 200).subject
    assert daily == 'Daily digest "ops" · Mon 23 Nov: 0 live, 0 opened, 0 resolved'
    weekly = renderer.render(digest_of([], window, cadence="weekly"), DEFAULT_SUBJECT, 200)
    assert weekly.subject.startswith('Weekly digest "ops" · 16\u201322 Nov: ')
    across = digest_of([], window, cadence="weekly")
    across = DigestData(**{**across.__dict__, "window_end": datetime(2026, 12, 7, 8, tzinfo=UTC)})
    assert across.period_label == "30 Nov\u20136 Dec"


# --- end to end ------------------------------------------------------------------------------


def day_start(now: datetime, days_back: int) -> datetime:
    return local_midnight(now.astimezone(LONDON).date() - timedelta(days=days_back))


def test_the_chart_end_to_end_through_the_sandbox(
    sandbox: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """Incidents spread over the last days reach the chart in HTML and text; one paged query
    reaches back to the comparison window."""
    sandbox.reset(incidents=0)
    now = sandbox.now()
    plan = {1: ["Critical", "Minor"], 3: ["Major", "Major", "Major", "Minor"], 10: ["Minor"]}
    for days_back, severities in plan.items():
        for k, severity in enumerate(severities):
            created = day_start(now, days_back) + timedelta(hours=9, minutes=k)
            sandbox.add_incident(
                name=f"Chart {days_back}/{k}",
                severity=severity,
                status="Documenting",
                created_at=created.isoformat(),
                updated_at=(created + timedelta(hours=2)).isoformat(),
                timestamps={"Resolved at": (created + timedelta(hours=1, minutes=30)).isoformat()},
            )
    path = write_config(tmp_path, sandbox.base_url, smtp.port, cron="0 8 * * *")
    runtime, digests = open_digests(path, Clock(now))
    with runtime:
        sandbox.clear_requests()
        rendered = digests.compose("daily", now)

    trends = rendered.data.trends
    assert trends is not None
    assert [row.opened for row in trends.rows] == [0, 0, 0, 4, 0, 2, 0]
    html, text = rendered.html, rendered.text
    assert "Trends · last 7 days" in html
    assert "6 opened, 5 more than the previous 7 days" in html
    three_days_ago = trends.rows[3]
    assert three_days_ago.label in html
    # Major 3 of the busiest 4 = 75%, Minor 25%: plain table cells with the badge tones.
    assert '<td class="s-major" width="75%" style="background:#c27c0e">' in html
    assert '<td class="s-minor" width="25%" style="background:#1e429f">' in html
    assert "<img" not in html
    assert "<script" not in html
    assert "TRENDS · last 7 days" in text
    assert f"{three_days_ago.label:<13}   4 {'▓' * 22}{'▒' * 8}  1h 30m" in text
    assert "▓ Major" in text

    listed = [r for r in sandbox.requests() if r["path"] == "/v2/incidents"]
    since = [dict(r["query_pairs"]).get("updated_at[gte]") for r in listed]
    reached = [s for s in since if s is not None]
    assert len(set(reached)) == 1, since  # one updated-since query (paged), not one per period
    window = trend_window(digests.job("daily").options, now)
    assert reached[0] <= window.since.astimezone(UTC).date().isoformat()
