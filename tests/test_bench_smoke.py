"""The requests-per-cycle benchmark, small: a cycle costs exactly the minimum number of requests.

ceil(N/250) list pages per distinct query plus one GET and one POST per edit
(with since = "live", one updates request per incident that could be due and one
more per edit; with require.follow_ups, floor(F/250) + 1 follow-up pages for F follow-ups,
as a full last page is followed by an empty one), however many rules share the query
(bench/requests_per_cycle.py; the full grid runs with ``make bench``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from automations.sandbox import SandboxThread
from bench.requests_per_cycle import Scenario, measure, sandbox_thread


@pytest.fixture(scope="module")
def bench_sandbox() -> Iterator[SandboxThread]:
    with sandbox_thread() as server:
        yield server


@pytest.mark.parametrize(
    "scenario",
    [
        *(Scenario(live=100, rules=r) for r in range(1, 6)),
        Scenario(live=100, rules=5, acting=3),
        Scenario(live=100, rules=5, acting=3, since="live"),
        Scenario(live=100, rules=4, queries=4),
        *(Scenario(live=100, rules=2, follow_ups=f) for f in (0, 249, 250, 600)),
    ],
    ids=lambda s: s.label,
)
def test_requests_per_cycle_are_the_minimum(
    bench_sandbox: SandboxThread, scenario: Scenario
) -> None:
    found = measure(bench_sandbox, scenario)
    assert found.applied == scenario.acting
    assert found.client_count == found.total  # the client's counter agrees with the server's log
    assert found.total == found.minimum, found.as_dict()
    assert found.ratio == 1.0
    if scenario.since == "live":  # updates read for each incident that could be due, and re-read
        assert found.could_be_due > found.applied
        assert found.updates == found.could_be_due + found.applied
    if scenario.follow_ups is not None:  # 250 a page, and an empty one after a full one
        assert found.follow_up_pages == scenario.follow_ups // 250 + 1
        assert found.other == 0
