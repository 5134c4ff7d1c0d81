"""1. API requests per cycle against the minimum.

The minimum for one cycle is ``ceil(N/250)`` list pages per distinct query
(at least one) plus one GET and one POST per action. A rule with ``since =
"live"`` (or ``"severity"``) must also read the updates of every incident that
could be due (old enough since creation for its first step, and below that
step's target: the anchor is never earlier than creation), one request each,
and re-read the updates of each incident it edits. A rule with
``require.follow_ups`` reads every follow-up through ``GET /v3/follow_ups``:
``floor(F/250) + 1`` pages for F follow-ups, because the API sets its cursor
whenever a page is full (there *may* be more), so a full last page is followed
by an empty one. Rules are real configs
(a generated TOML through ``load_config``), wired by ``build_runtime`` against
an in-process sandbox holding N live incidents; one cycle runs through the
daemon's ``run_once``. Requests are counted in the sandbox's request log and
cross-checked with the client's own counter. The catalog fetch at start-up is
not part of a cycle and is not counted.
"""

from __future__ import annotations

import contextlib
import math
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from automations.daemon import run_once
from automations.incidentio import IncidentFilter
from automations.sandbox import SandboxConfig, SandboxThread
from automations.sandbox.filters import parse_incident_query
from automations.sandbox.state import SandboxState
from bench.common import (
    LIVE,
    PAGE_SIZE,
    UNLIMITED_PER_MINUTE,
    Check,
    Section,
    add_follow_ups,
    close_rule,
    escalate_rule,
    load_live,
    quiet_logs,
    runtime_for,
    table,
    write_config,
)

# Distinct server-side queries rules can share (all within the live incidents).
QUERIES: tuple[dict[str, object], ...] = (
    LIVE,
    {"status_category": ["live"], "severity": ["Minor"]},
    {"status_category": ["live"], "custom_field": {"Team": ["Payments"]}},
    {"status_category": ["live"], "role": {"Incident Lead": "unassigned"}},
)
ACTING_AFTER = timedelta(hours=1)  # the acting rule's first step: 1h -> Major
FROM_UPDATES = ("live", "severity")
FOLLOW_UP_PAGE = 250
_GET_ONE = re.compile(r"^/v2/incidents/[^/]+$")
_EDIT = re.compile(r"^/v2/incidents/[^/]+/actions/edit$")


@dataclass(frozen=True)
class Scenario:
    """N live incidents, R rules over Q distinct queries; the first rule acts ``acting`` times,
    its age counted ``since`` creation, or since the incident entered live. With
    ``follow_ups`` (a count), the sync_status rules also require completed follow-ups
    and the organisation has that many."""

    live: int
    rules: int
    queries: int = 1
    acting: int = 0
    since: str = "created"
    follow_ups: int | None = None

    @property
    def label(self) -> str:
        text = f"N={self.live:,} R={self.rules}"
        if self.queries > 1:
            text += f" Q={self.queries}"
        if self.acting:
            text += f" acting={self.acting}"
        if self.since != "created":
            text += f" since={self.since}"
        if self.follow_ups is not None:
            text += f" follow-ups={self.follow_ups:,}"
        return text

    def rule_configs(self) -> list[dict[str, object]]:
        """Both rule types, alternating; nothing is due except the acting rule's step."""
        configs = []
        for i in range(self.rules):
            where = QUERIES[i % self.queries]
            if i == 0 and self.acting:
                configs.append(
                    escalate_rule(
                        "act-0",
                        after="1h",
                        where=where,
                        max_actions=self.acting,
                        since=self.since,
                    )
                )
            elif i % 2 == 0:
                configs.append(escalate_rule(f"escalate-{i}", where=where))
            else:
                needs = self.follow_ups is not None
                configs.append(close_rule(f"close-{i}", where=where, follow_ups=needs))
        return configs


@dataclass(frozen=True)
class Measurement:
    scenario: Scenario
    matches: tuple[int, ...]  # incidents matching each distinct query (the sandbox's own count)
    could_be_due: int  # incidents whose updates a since = live rule must read (0 otherwise)
    list_pages: int
    gets: int
    updates: int
    follow_up_pages: int
    posts: int
    other: int
    client_count: int
    applied: int
    seconds: float

    @property
    def total(self) -> int:
        return (
            self.list_pages
            + self.gets
            + self.updates
            + self.follow_up_pages
            + self.posts
            + self.other
        )

    @property
    def follow_up_minimum(self) -> int:
        """floor(F/250) + 1: a full last page is followed by an empty one (section 0)."""
        count = self.scenario.follow_ups
        return 0 if count is None else count // FOLLOW_UP_PAGE + 1

    @property
    def minimum(self) -> int:
        pages = sum(max(1, math.ceil(n / PAGE_SIZE)) for n in self.matches)
        # Re-read the incident, then edit it; with since = live, also re-read its updates.
        per_edit = 3 if self.scenario.since in FROM_UPDATES else 2
        return pages + self.could_be_due + per_edit * self.applied + self.follow_up_minimum

    @property
    def ratio(self) -> float:
        return self.total / self.minimum

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.label,
            "matches": list(self.matches),
            "could_be_due": self.could_be_due,
            "list_pages": self.list_pages,
            "gets": self.gets,
            "updates": self.updates,
            "follow_up_pages": self.follow_up_pages,
            "follow_up_minimum": self.follow_up_minimum,
            "posts": self.posts,
            "other": self.other,
            "total": self.total,
            "client_count": self.client_count,
            "applied": self.applied,
            "minimum": self.minimum,
            "ratio": round(self.ratio, 4),
            "seconds": round(self.seconds, 3),
        }


@contextlib.contextmanager
def sandbox_thread() -> Iterator[SandboxThread]:
    server = SandboxThread(SandboxConfig(incidents=0, rate_limit_per_minute=UNLIMITED_PER_MINUTE))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def matching(state: SandboxState, query: IncidentFilter) -> int:
    """How many incidents the sandbox serves for ``query``, by its own filter code."""
    pairs = [*query.to_params(), ("page_size", str(PAGE_SIZE))]
    predicate = parse_incident_query(pairs, state.store.catalog, accept_large_pages=False).predicate
    return sum(1 for incident in state.store.all() if predicate(incident))


def could_be_due(state: SandboxState, query: IncidentFilter) -> int:
    """Incidents of ``query`` old enough since creation for the acting rule's first step and
    below its target (Major): the most its ``since = "live"`` anchor could make due."""
    pairs = [*query.to_params(), ("page_size", str(PAGE_SIZE))]
    predicate = parse_incident_query(pairs, state.store.catalog, accept_large_pages=False).predicate
    catalog, now = state.store.catalog, state.clock.now()
    target = next(s for s in catalog.severities if s.name == "Major").rank
    return sum(
        1
        for incident in state.store.all()
        if predicate(incident)
        and now - incident.created_at >= ACTING_AFTER
        and (
            incident.severity_id is None
            or catalog.severity_by_id[incident.severity_id].rank < target
        )
    )


def measure(server: SandboxThread, scenario: Scenario) -> Measurement:
    """One cycle of the scenario's rules against ``server``, reloaded with N live incidents."""
    state: SandboxState = server.app.state.sandbox
    load_live(state, scenario.live)
    if scenario.follow_ups:
        add_follow_ups(state.store, scenario.follow_ups)
    with tempfile.TemporaryDirectory(prefix="bench-rpc-") as directory:
        path = write_config(Path(directory), server.base_url, scenario.rule_configs())
        with runtime_for(path) as runtime:
            queries = {rule.query().key(): rule.query() for rule in runtime.rules}
            matches = tuple(matching(state, query) for query in queries.values())
            acting = runtime.rules[0].query()
            due = could_be_due(state, acting) if scenario.since in FROM_UPDATES else 0
            state.requests.clear()
            before = runtime.client.counter.total()
            started = time.perf_counter()
            with quiet_logs():
                reports = run_once(runtime)
            seconds = time.perf_counter() - started
            client_count = runtime.client.counter.total() - before
            log = list(state.requests)
    if any(report.error for report in reports):
        raise RuntimeError(f"{scenario.label}: the cycle failed: {reports}")
    applied = sum(report.applied for report in reports)
    if applied != scenario.acting:
        raise RuntimeError(f"{scenario.label}: {applied} edits applied, expected {scenario.acting}")
    pages = sum(1 for e in log if e["method"] == "GET" and e["path"] == "/v2/incidents")
    gets = sum(1 for e in log if e["method"] == "GET" and _GET_ONE.match(e["path"]))
    updates = sum(1 for e in log if e["method"] == "GET" and e["path"] == "/v2/incident_updates")
    follow_ups = sum(1 for e in log if e["method"] == "GET" and e["path"] == "/v3/follow_ups")
    posts = sum(1 for e in log if e["method"] == "POST" and _EDIT.match(e["path"]))
    return Measurement(
        scenario=scenario,
        matches=matches,
        could_be_due=due,
        list_pages=pages,
        gets=gets,
        updates=updates,
        follow_up_pages=follow_ups,
        posts=posts,
        other=len(log) - pages - gets - updates - follow_ups - posts,
        client_count=client_count,
        applied=applied,
        seconds=seconds,
    )


def scenarios(quick: bool) -> list[Scenario]:
    sizes = (100, 1_000) if quick else (100, 1_000, 10_000)
    grid = [Scenario(n, r) for n in sizes for r in (1, 5, 20)]
    acting = [Scenario(n, 5, acting=5) for n in sizes]
    # since=live at N=10,000 reads ~3,500 incidents' updates: 3 minutes a cycle at 1200/min,
    # measured once (docs/benchmarks.md); the two smaller sizes show the same formula exactly.
    live = [Scenario(n, 5, acting=5, since="live") for n in sizes[:2]]
    mixed = [Scenario(n, 20, queries=4) for n in sizes[1:]]
    follow_ups = [Scenario(sizes[1], 5, follow_ups=f) for f in (0, 249, 250, 2_600)]
    return grid + acting + live + mixed + follow_ups


def run(quick: bool) -> Section:
    with sandbox_thread() as server:
        results = [measure(server, scenario) for scenario in scenarios(quick)]
    return report(results)


def report(results: Sequence[Measurement]) -> Section:
    worst = max(results, key=lambda m: m.ratio)
    all_min = all(m.total == m.minimum for m in results)
    counted = all(m.client_count == m.total for m in results)
    rows = [
        (
            m.scenario.label,
            " + ".join(f"{n:,}" for n in m.matches),
            m.applied,
            m.list_pages,
            m.gets,
            m.updates,
            m.follow_up_pages,
            m.posts,
            m.other,
            m.total,
            m.minimum,
            f"{m.ratio:.2f}",
            "yes" if m.client_count == m.total else f"no ({m.client_count})",
            f"{m.seconds:.2f}",
        )
        for m in results
    ]
    header = (
        "scenario",
        "matching per query",
        "edits",
        "list pages",
        "GET one",
        "GET updates",
        "GET follow-ups",
        "POST edit",
        "other",
        "total",
        "minimum",
        "ratio",
        "client counter agrees",
        "cycle s",
    )
    return Section(
        number=1,
        title="API requests per cycle against the minimum",
        command="python -m bench (bench/requests_per_cycle.py)",
        checks=[
            Check(
                "requests per cycle / minimum",
                "1.00",
                f"1.00 in all {len(results)} scenarios"
                if all_min
                else f"{worst.ratio:.2f} worst of {len(results)} ({worst.scenario.label})",
                all_min and counted,
            )
        ],
        body=[
            "N live incidents; R rules (escalate_severity and sync_status alternating) over Q "
            "distinct queries (Q=1 unless shown: all rules share `status_category = live`; Q=4 "
            "adds live+Minor, live+Team=Payments, live+Incident Lead unassigned). Nothing is due "
            "except in the `acting=5` rows, where the first rule escalates with "
            "`max_actions_per_cycle = 5`; with `since=live` it counts from when each incident "
            "entered live, read from its updates. Minimum = sum over queries of "
            "max(1, ceil(matching/250)) + 2 x edits; with `since=live`, + one updates request for "
            "each incident that could be due (old enough since creation for the first step and "
            "below its target, since the anchor is never earlier than creation) + one more per "
            "edit (the re-check reads fresh updates). With `follow-ups=F` the sync_status rules "
            "also require completed follow-ups: + floor(F/250) + 1 `GET /v3/follow_ups` pages "
            "(the API sets its cursor on every full page, so a full last page is followed by "
            "an empty one). `cycle s` includes the client's token bucket (1200/min, burst 20).",
            "",
            *table(header, rows),
        ],
        raw={"scenarios": [m.as_dict() for m in results]},
    )
