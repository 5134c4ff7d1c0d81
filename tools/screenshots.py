"""``make screenshots``: the demo's digest in headless Chromium, light and dark, 375 and 800 px.

The digest is the real one: the demo's organisation in the sandbox, one engine
cycle of config/demo.toml's rules (so "what the automations did" has rows),
then ``Digests.preview`` of its ``daily`` digest with every section on. Every
clock (the sandbox's, the engine's, the digest's) is pinned to ``MOMENT``, so the
pictures do not depend on the day they are made: regenerating them on another
date changes no pixel. The browser side is tools/chromium.py.

    .venv/bin/python -m tools.screenshots [--out docs]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

from automations.config import StoreSettings, load_config
from automations.digest.config import SECTIONS
from automations.digest.render import Rendered
from automations.sandbox import SandboxConfig, SandboxThread
from tools.chromium import Browser, ChromiumError, Measure

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "config" / "demo.toml"
DIGEST = "daily"
# A Monday morning in London: any fixed moment would do.
MOMENT = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
# The rules' cycle runs this long before the digest, so its changes are inside the window.
CYCLE_BEFORE = timedelta(minutes=5)
# Enough for every section to have rows and one "and N more" link; a short page to look at.
INCIDENTS = 200  # the demo's organisation: a week of trends worth a chart
MAX_ROWS = 16
WIDTHS = (375, 800)
SCHEMES = ("light", "dark")
API_KEY = SandboxConfig().api_key


def shot_name(scheme: str, width: int) -> str:
    """docs/digest-light-375.png and so on: the names the README links to."""
    return f"digest-{scheme}-{width}.png"


def demo_digest(
    base_url: str,
    state_dir: Path,
    *,
    now: datetime = MOMENT,
    api_key: str = API_KEY,
    max_rows: int = MAX_ROWS,
) -> Rendered:
    """The demo config's digest at ``now``, every section on, after one cycle of its rules.

    ``base_url`` is a sandbox seeded at ``now - CYCLE_BEFORE`` (demo_sandbox); the engine
    runs at that moment and the digest at ``now``: neither reads the host's clock.
    """
    from automations.daemon import run_once
    from automations.demo import demo_config
    from automations.digest.service import Digests
    from automations.runtime import build_runtime

    config = demo_config(
        load_config(DEMO_CONFIG), base_url=base_url, state_dir=state_dir, smtp_port=1
    )
    config = dataclasses.replace(
        config,
        store=StoreSettings(path=state_dir / "screenshots.db"),
        digests=tuple(
            digest.model_copy(update={"sections": SECTIONS, "max_incidents": max_rows})
            for digest in config.digests
        ),
    )
    cycle_at: Callable[[], datetime] = lambda: now - CYCLE_BEFORE  # noqa: E731
    digest_at: Callable[[], datetime] = lambda: now  # noqa: E731
    runtime = build_runtime(config, SecretStr(api_key), lock=False, clock=cycle_at)
    try:
        run_once(runtime)
        digests = Digests(
            runtime.config,
            runtime.client,
            runtime.ledger,
            runtime.catalog,
            mailer=None,
            clock=digest_at,
            data_clock=digest_at,
        )
        return digests.preview(DIGEST)
    finally:
        runtime.close()


@contextmanager
def demo_sandbox(now: datetime = MOMENT, incidents: int = INCIDENTS) -> Iterator[SandboxThread]:
    """The demo's organisation (seed 1) on a free loopback port, seeded just before ``now``."""
    config = SandboxConfig(seed=1, incidents=incidents, now=now - CYCLE_BEFORE)
    with SandboxThread(config) as sandbox:
        yield sandbox


def shoot(html: Path, out: Path, browser: Browser) -> dict[str, Measure]:
    """The four full-page PNGs of ``html`` into ``out``; what each page measured, by name."""
    measures = {}
    for width in WIDTHS:
        for scheme in SCHEMES:
            with browser.page(html, width=width, dark=scheme == "dark") as page:
                name = shot_name(scheme, width)
                measures[name] = page.measure()
                (out / name).write_bytes(page.screenshot())
    return measures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.screenshots", description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where the PNGs go")
    args = parser.parse_args(argv)
    # The demo's webhook channel needs no secret here: nothing is sent (lock=False).
    os.environ.pop("AUTOMATIONS_STORE_URL", None)
    with tempfile.TemporaryDirectory(prefix="automations-shots-") as tmp:
        with demo_sandbox() as sandbox:
            html = demo_digest(sandbox.base_url, Path(tmp)).html
        page = Path(tmp) / "digest.html"
        page.write_text(html, encoding="utf-8")
        args.out.mkdir(parents=True, exist_ok=True)
        try:
            with Browser() as browser:
                measures = shoot(page, args.out, browser)
        except ChromiumError as exc:
            print(f"screenshots: {exc}", file=sys.stderr)
            return 1
    for name, measure in measures.items():
        sideways = " SCROLLS SIDEWAYS" if measure.scrolls_sideways else ""
        print(f"{args.out / name}: {measure.inner_width}x{measure.scroll_height}{sideways}")
    return 1 if any(m.scrolls_sideways for m in measures.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
