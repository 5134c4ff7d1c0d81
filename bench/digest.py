"""5. Digest rendering for 200 and 1,000 incidents: time and HTML size.

Input: N live incidents from the sandbox (every one a row, about a third also
opened in the 24-hour window: the heaviest digest for a given N) fetched
through the client, the catalog, and 50 applied escalations as ledger events.
Timed: ``build_digest`` + ``Renderer.render`` (Jinja, css-inline, the 100 KB
budget), cold (a new Renderer: template compile, imports) and warm (median).
``max_incidents`` is the digest's row budget: 200 by default, up to 1,000.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from automations.catalog import Catalog
from automations.incidentio import Incident, IncidentIOClient
from automations.ledger import Event, EventState
from bench.common import API_KEY, Check, Section, load_live, median, table

SIZES = (200, 1_000)
TIME_TARGET = 1.0
SIZE_TARGET = 100_000  # bytes, at 200 incidents
EVENTS = 50
ZONE = "Europe/London"


def _events(incidents: Sequence[Incident], catalog: Catalog, now: datetime) -> list[Event]:
    major = catalog.severity("Major")
    return [
        Event(
            id=index + 1,
            rule="escalate-stuck-minor",
            incident_id=incident.id,
            incident_reference=incident.reference,
            event_key=f"escalate-stuck-minor/{incident.id}/severity-{major.id}",
            state=EventState.APPLIED,
            reason="live for 2h10m since creation (step 1: after 2h); severity Minor -> Major",
            request_body={"incident": {"severity_id": major.id}, "notify_incident_channel": True},
            request_id=f"req-{index}",
            error=None,
            dry_run=False,
            claimed_at=now - timedelta(minutes=10 * index),
            finished_at=now - timedelta(minutes=10 * index),
            attempts=1,
        )
        for index, incident in enumerate(incidents[:EVENTS])
    ]


@dataclass(frozen=True)
class Inputs:
    """What one digest is built from."""

    incidents: list[Incident]
    catalog: Catalog
    events: list[Event]
    now: datetime


def fetch_inputs(base_url: str) -> Inputs:
    with IncidentIOClient(base_url=base_url, api_key=API_KEY, requests_per_minute=1200) as client:
        catalog = Catalog.fetch(client)
        incidents = list(client.iter_incidents())
        now = client.server_time or datetime.now(UTC)
    return Inputs(incidents, catalog, _events(incidents, catalog, now), now)


def run(quick: bool) -> Section:
    try:
        from automations.digest.config import DEFAULT_SUBJECT, SECTIONS
        from automations.digest.content import build_digest
        from automations.digest.render import Renderer
    except ImportError as exc:
        return pending(f"the digest package does not import yet ({exc})")

    from bench.requests_per_cycle import sandbox_thread

    def compose(renderer: Renderer, inputs: Inputs, max_rows: int) -> Any:
        data = build_digest(
            name="daily",
            timezone=ZONE,
            incidents=inputs.incidents,
            catalog=inputs.catalog,
            events=inputs.events,
            now=inputs.now,
            window_start=inputs.now - timedelta(hours=24),
            window_end=inputs.now,
            sections=SECTIONS,
        )
        return renderer.render(data, DEFAULT_SUBJECT, max_rows)

    repeats = 3 if quick else 7
    rows = []
    raw: dict[str, Any] = {}
    times: list[float] = []
    size_at_200 = 0
    with sandbox_thread() as server:
        for count in SIZES:
            load_live(server.app.state.sandbox, count)
            inputs = fetch_inputs(server.base_url)
            for max_rows in sorted({200, count}):
                cold_start = time.perf_counter()
                rendered = compose(Renderer("digest", ZoneInfo(ZONE)), inputs, max_rows)
                cold = time.perf_counter() - cold_start
                renderer = Renderer("digest", ZoneInfo(ZONE))
                compose(renderer, inputs, max_rows)
                warm = median(
                    [_seconds(compose, renderer, inputs, max_rows) for _ in range(repeats)]
                )
                html = len(rendered.html.encode("utf-8"))
                text = len(rendered.text.encode("utf-8"))
                shown = rendered.data.shown_rows
                if count == 200:
                    size_at_200 = max(size_at_200, html)
                times.append(max(cold, warm))
                key = f"{count}_incidents_max_{max_rows}"
                raw[key] = {"cold": cold, "warm": warm, "html": html, "text": text, "rows": shown}
                rows.append(
                    (
                        f"{count:,}",
                        max_rows,
                        shown,
                        f"{cold:.3f}",
                        f"{warm:.3f}",
                        f"{html / 1000:.1f}",
                        f"{text / 1000:.1f}",
                    )
                )
    worst = max(times)
    return Section(
        number=5,
        title="Digest rendering for 200 and 1,000 incidents",
        command="python -m bench (bench/digest.py)",
        checks=[
            Check(
                "build + render one digest (cold and warm)",
                f"<= {TIME_TARGET:g} s",
                f"{worst:.3f} s worst",
                worst <= TIME_TARGET,
            ),
            Check(
                "HTML size at 200 incidents",
                "< 100 KB",
                f"{size_at_200 / 1000:.1f} KB",
                size_at_200 < SIZE_TARGET,
            ),
        ],
        body=table(
            (
                "incidents",
                "max_incidents",
                "rows shown",
                "cold s",
                f"warm s (median of {repeats})",
                "HTML KB",
                "text KB",
            ),
            rows,
        ),
        raw=raw,
    )


def _seconds(func: Callable[..., object], *args: object) -> float:
    started = time.perf_counter()
    func(*args)
    return time.perf_counter() - started


def pending(reason: str) -> Section:
    return Section(
        number=5,
        title="Digest rendering for 200 and 1,000 incidents",
        command="python -m bench (bench/digest.py)",
        checks=[
            Check("build + render one digest", f"<= {TIME_TARGET:g} s", "TODO (pending)", None),
            Check("HTML size at 200 incidents", "< 100 KB", "TODO (pending)", None),
        ],
        body=[f"**TODO**: pending the digest package: {reason}."],
    )
