"""The digest in a real browser: no sideways scrolling on a phone, and a dark mode that applies.

Headless Chromium (tools/chromium.py, the DevTools protocol on a pipe) opens the
demo's digest as it is sent: the sandbox's demo organisation, one cycle of
config/demo.toml's rules, every section on (so a section added later is checked
too), plus incidents whose names are one long word or a URL. Every clock is
pinned to one moment taken relative to now (the last whole hour), never to a calendar
date; `make screenshots` pins its own (tools/screenshots.py MOMENT) for byte-identical
pictures.
Without Chromium the tests skip locally; in CI (``CI`` set) they fail instead.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from automations.clock import host_now
from automations.digest.render import Rendered
from automations.sandbox import SandboxThread
from tests.sandbox_server import SandboxControl
from tests.secret_values import SANDBOX_KEY
from tools.chromium import Browser, Measure, find_chromium
from tools.screenshots import CYCLE_BEFORE, INCIDENTS, demo_digest, shoot, shot_name

PHONE = 375
# The last whole hour: the sandbox, the rules' cycle and the digest all run at fixed offsets
# from it, so nothing reads the host's clock after this line.
MOMENT = host_now().replace(minute=0, second=0, microsecond=0)
# Names people paste: one unbroken word, and a URL; each would widen a table cell to fit.
LONG_NAMES = (
    "PaymentsGatewayTimeoutsOnCheckoutServiceInEuWest1AfterBuild20261123RolledOutToAllPods",
    "https://status.example.com/incidents/2026/11/23/checkout-latency-eu-west-1-primary-db",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module (a new tab per page)."""
    if find_chromium() is None:
        message = "Chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: .ci/run installs it, so CI never skips these tests")
        pytest.skip(message)
    with Browser() as started:
        yield started


@pytest.fixture(scope="module")
def digest(
    sandbox_server: SandboxThread, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Rendered, Path]:
    """The demo's digest with two long-named incidents (escalated by the cycle), as an HTML file."""
    control = SandboxControl(sandbox_server.base_url)
    try:
        seeded = MOMENT - CYCLE_BEFORE
        control.reset(incidents=INCIDENTS, now=seeded)
        for name in LONG_NAMES:
            created = (seeded - timedelta(hours=3)).isoformat()
            control.add_incident(
                name=name,
                created_at=created,
                updated_at=created,
                status="Investigating",
                severity="Minor",
            )
        folder = tmp_path_factory.mktemp("digest")
        # Every row, not the screenshots' short page: each one must fit.
        rendered = demo_digest(
            sandbox_server.base_url, folder, api_key=SANDBOX_KEY, max_rows=200, now=MOMENT
        )
    finally:
        control.close()
    page = folder / "digest.html"
    page.write_text(rendered.html, encoding="utf-8")
    return rendered, page


def measure(browser: Browser, page: Path, *, width: int, dark: bool) -> Measure:
    with browser.page(page, width=width, dark=dark) as tab:
        return tab.measure()


@pytest.fixture(scope="module")
def on_a_phone(browser: Browser, digest: tuple[Rendered, Path]) -> dict[bool, Measure]:
    """The digest measured once at 375 px, light (False) and dark (True): the checks below
    each read it rather than loading the page again."""
    _, page = digest
    return {dark: measure(browser, page, width=PHONE, dark=dark) for dark in (False, True)}


def test_the_page_is_the_pinned_full_digest_with_the_long_names(
    digest: tuple[Rendered, Path],
) -> None:
    """The browser sees the full digest of the pinned moment: sections with rows, long names."""
    rendered, _ = digest
    # The pinned moment, as the digest's timezone shows it.
    local = MOMENT.astimezone(ZoneInfo("Europe/London"))
    assert local.strftime("%a %d %b %Y, %H:%M ") + (local.tzname() or "") in rendered.html
    shown = rendered.data.shown_sections
    assert {"figures", "live", "opened", "resolved", "automations"} <= set(shown)
    assert rendered.data.actions, "the rules' cycle changed nothing: the automations rows are empty"
    for name in LONG_NAMES:
        assert name in rendered.html  # shown whole, not cut to fit


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_no_sideways_scrolling_at_375_px(on_a_phone: dict[bool, Measure], dark: bool) -> None:
    """At 375 CSS px the page is no wider than the screen: long names wrap, nothing overflows."""
    seen = on_a_phone[dark]
    assert seen.inner_width == PHONE
    assert seen.scroll_width <= seen.inner_width, (
        f"the digest is {seen.scroll_width} px wide at {PHONE} px; past the edge: "
        + ", ".join(seen.wider)
    )
    assert seen.wider == ()


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_no_short_word_is_split_at_375_px(on_a_phone: dict[bool, Measure], dark: bool) -> None:
    """Wrapping long names never splits a short word or number ("15" as "1", "5") in a column."""
    seen = on_a_phone[dark]
    assert seen.split == (), "split across lines (give the cell nowrap): " + ", ".join(seen.split)


def test_dark_mode_applies(on_a_phone: dict[bool, Measure]) -> None:
    """prefers-color-scheme: dark matches, and the page and the card are painted dark."""
    light, dark = on_a_phone[False], on_a_phone[True]
    assert (light.dark, dark.dark) == (False, True)
    assert light.body_background != dark.body_background
    assert light.card_background != dark.card_background
    assert _luminance(dark.card_background) < _luminance(light.card_background)


def test_screenshots_are_the_whole_page(
    browser: Browser, digest: tuple[Rendered, Path], tmp_path: Path
) -> None:
    """`make screenshots` writes four PNGs, each as wide as its viewport and as tall as the page."""
    _, page = digest
    measures = shoot(page, tmp_path, browser)
    assert sorted(measures) == sorted(
        shot_name(scheme, width) for scheme in ("light", "dark") for width in (375, 800)
    )
    for name, seen in measures.items():
        width, height = _png_size(tmp_path / name)
        assert (width, height) == (seen.inner_width, seen.scroll_height), name
        assert height > 800  # taller than any window: the full page, not the viewport
    narrow, wide = (measures[shot_name("light", width)] for width in (375, 800))
    assert narrow.scroll_height > wide.scroll_height  # lines wrap on the phone


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _luminance(colour: str | None) -> float:
    """'rgb(22, 27, 34)' -> the mean channel, enough to tell dark from light."""
    assert colour is not None
    assert colour.startswith("rgb")
    channels = colour[colour.index("(") + 1 : colour.index(")")].split(",")[:3]
    return sum(float(value) for value in channels) / 3


@pytest.mark.parametrize(("cell", "split"), [("<td>", ('(top): b "15"',)), ("<td nowrap>", ())])
def test_the_split_word_check_finds_a_squeezed_number(
    browser: Browser, tmp_path: Path, cell: str, split: tuple[str, ...]
) -> None:
    """The check above can fail: a number squeezed by a 100% cell under anywhere is reported."""
    page = tmp_path / "squeezed.html"
    page.write_text(
        '<table style="width:200px;overflow-wrap:anywhere"><tr><td width="100%">'
        f"{'x' * 60}</td>{cell}<b>15</b></td></tr></table>",
        encoding="utf-8",
    )
    assert measure(browser, page, width=PHONE, dark=False).split == split
