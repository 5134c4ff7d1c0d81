"""Rendering: golden files for both templates, escaping, strictness, overrides, size budget.

Golden files live in tests/golden/. After an intended template change, regenerate
them and review the diff::

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_digest_render.py
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from automations.digest.config import DEFAULT_SUBJECT
from automations.digest.content import DigestData
from automations.digest.render import HTML_LIMIT, Renderer, human_duration
from automations.errors import ConfigError
from automations.incidentio import Incident
from tests.digest_support import digest_of, make_event, make_incident
from tests.factories import NOW

GOLDEN = Path(__file__).parent / "golden"
LONDON = ZoneInfo("Europe/London")
SECTIONS = ("figures", "live", "opened", "resolved", "automations")


def sample(incidents: list[Incident] | None = None, **options: object) -> DigestData:
    """A fixed, realistic digest: every section, every severity, one action, one '&'."""
    if incidents is None:
        checkout = make_incident(
            "Checkout latency spike in eu-west-1",
            age=timedelta(hours=26),
            severity="Critical",
            number=101,
        )
        incidents = [
            checkout,
            make_incident(
                "Payments & refunds delayed <EU>",
                age=timedelta(hours=3, minutes=12),
                severity="Major",
                status="Fixing",
                lead=False,
                number=102,
            ),
            make_incident("Login timeouts on iOS", age=timedelta(minutes=40), number=103),
            make_incident("Unrated alert", age=timedelta(hours=2), severity=None, number=104),
            make_incident(
                "Search index lagging behind writes",
                age=timedelta(hours=9),
                status="Documenting",
                resolved_after=timedelta(hours=2, minutes=30),
                number=99,
            ),
            make_incident(
                "DNS resolution failures in us-east-1",
                age=timedelta(days=6),
                status="Closed",
                severity="Critical",
                resolved_after=timedelta(days=6) - timedelta(hours=5),
                number=90,
            ),
        ]
        events = [
            make_event(
                checkout,
                at=NOW - timedelta(hours=2),
                body={"severity_id": "SEV3"},
                reason="live for 6h 3m (since 04:00 UTC); step 2 (after 6h): severity Major -> "
                "Critical",
                kind="escalate",
                details={"from": "Major", "to": "Critical", "step": 2},
                recorded=True,
            )
        ]
    else:
        events = []
    return digest_of(incidents, events, **options)  # type: ignore[arg-type]


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run UPDATE_GOLDEN=1 pytest {__file__}"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{name} differs from the golden file; see the module docstring"


def test_golden_html_and_text() -> None:
    """Both templates render the sample exactly as reviewed (tests/golden/)."""
    rendered = Renderer("digest", LONDON).render(sample(), DEFAULT_SUBJECT, 200)
    check_golden("digest.html", rendered.html)
    check_golden("digest.txt", rendered.text)
    assert rendered.subject == 'Daily digest "daily" · Mon 23 Nov: 4 live, 4 opened, 2 resolved'


def test_html_autoescapes_and_text_does_not() -> None:
    """'&' and '<' are escaped in HTML only; the plain-text part shows the name as typed."""
    rendered = Renderer("digest", LONDON).render(sample(), DEFAULT_SUBJECT, 200)
    assert "Payments &amp; refunds delayed &lt;EU&gt;" in rendered.html
    assert "Payments & refunds delayed <EU>" in rendered.text
    assert "<EU>" not in rendered.html


def test_css_is_inlined_and_dark_mode_kept() -> None:
    """Rules are inlined as style attributes; only the @media blocks (narrow, dark) stay."""
    html = Renderer("digest", LONDON).render(sample(), DEFAULT_SUBJECT, 200).html
    assert 'class="r" style="width:76px;padding:6px 8px 6px 0;' in html
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]
    blocks = re.findall(r"@media \(([^)]*)\)\{.*?\n\}", style, flags=re.DOTALL)
    assert blocks == ["max-width:480px", "prefers-color-scheme: dark"]
    rest = re.sub(r"@media \([^)]*\)\{.*?\n\}", "", style, flags=re.DOTALL).strip()
    # Link colours stay in <style> (not repeated on every link) through an @media all block.
    assert rest == "@media all{a{color:#0b5cad}}"
    assert 'style="color:#0b5cad"' not in html
    assert '<meta name="color-scheme" content="light dark">' in html


def many(count: int, name_length: int = 45) -> list[Incident]:
    """Live incidents older than the window, so each is one row."""
    severities = ["Critical", "Major", "Minor"]
    return [
        make_incident(
            f"{i:04d} " + "Checkout latency spike in eu-west-1 " * (name_length // 36 + 1),
            age=timedelta(days=2, minutes=i),
            severity=severities[i % 3],
            number=1000 + i,
        )
        for i in range(count)
    ]


def test_two_hundred_incidents_fit_under_100_kb() -> None:
    """200 incidents: every one shown, HTML under the clipping limit."""
    rendered = Renderer("digest", LONDON).render(sample(many(200)), DEFAULT_SUBJECT, 200)
    assert len(rendered.html.encode()) < HTML_LIMIT
    assert len(rendered.data.live_rows) == 200
    assert "more on incident.io" not in rendered.html


def test_beyond_the_limit_says_and_n_more() -> None:
    """350 incidents: 200 rows and 'and 150 more' linking to the incident list."""
    rendered = Renderer("digest", LONDON).render(sample(many(350)), DEFAULT_SUBJECT, 200)
    assert len(rendered.html.encode()) < HTML_LIMIT
    assert len(rendered.data.live_rows) == 200
    assert '<a href="https://app.incident.io/acme/incidents"' in rendered.html
    assert "and 150 more on incident.io" in rendered.html
    assert "... and 150 more: https://app.incident.io/acme/incidents" in rendered.text


def test_long_names_shrink_the_rows_to_stay_under_the_limit() -> None:
    """Maximal names (200 characters) would overflow: fewer rows, still under 100 KB."""
    rendered = Renderer("digest", LONDON).render(sample(many(300, 400)), DEFAULT_SUBJECT, 200)
    assert len(rendered.html.encode()) <= HTML_LIMIT
    shown = len(rendered.data.live_rows)
    assert 100 < shown < 200
    assert f"and {300 - shown} more on incident.io" in rendered.html


def test_templates_dir_overrides_one_template(tmp_path: Path) -> None:
    """A file in templates_dir replaces the built-in one of that name; the other stays."""
    (tmp_path / "digest.txt.j2").write_text("custom {{ digest.name }}: {{ digest.figures.live }}")
    rendered = Renderer("digest", LONDON, tmp_path).render(sample(), DEFAULT_SUBJECT, 200)
    assert rendered.text == "custom daily: 4"
    assert "Live incidents" in rendered.html


def test_undefined_variables_are_errors(tmp_path: Path) -> None:
    """StrictUndefined: a typo in a template or the subject fails loudly, never renders blank."""
    (tmp_path / "digest.txt.j2").write_text("{{ digest.live_count }}")
    renderer = Renderer("digest", LONDON, tmp_path)
    renderer.check()  # it parses...
    with pytest.raises(ConfigError, match="live_count"):
        renderer.render(sample(), DEFAULT_SUBJECT, 200)  # ...but cannot render
    with pytest.raises(ConfigError, match="nope"):
        Renderer("digest", LONDON).render(sample(), "{{ digest.nope }}", 200)


def test_missing_template_is_a_config_error() -> None:
    """An unknown template name is refused when the digest is set up."""
    with pytest.raises(ConfigError, match=r"template 'weekly\.html\.j2' not found"):
        Renderer("weekly", LONDON).check()


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (None, "-"),
        (timedelta(seconds=20), "<1m"),
        (timedelta(minutes=12), "12m"),
        (timedelta(hours=2), "2h"),
        (timedelta(hours=2, minutes=5), "2h 5m"),
        (timedelta(days=3, hours=4, minutes=59), "3d 4h"),
        (timedelta(days=3), "3d"),
    ],
)
def test_human_duration(delta: timedelta | None, text: str) -> None:
    """Two units at most, for people skimming a list."""
    assert human_duration(delta) == text
