"""SIGTERM is honoured within seconds, mid-cycle: a Retry-After or rate-limit wait ends at
once, the engine stops between pages and between actions, and nothing is left claimed that
was not sent."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from automations.engine import Engine
from automations.errors import APIUnavailable
from automations.incidentio import IncidentIOClient, TokenBucket
from automations.ledger import EventState, Ledger, OutboxState
from tests.daemon_process import DaemonProcess
from tests.digest_support import Clock, SMTPServer, open_digests, write_config
from tests.engine_harness import Harness
from tests.sandbox_server import SandboxControl
from tests.test_digest_delivery import T0

H = timedelta(hours=1)

RULE = """
[[rules]]
name = "escalate"
type = "escalate_severity"
every = "{every}"
where = {{ status_category = ["live"] }}
steps = [ {{ after = "2h", to = "Major" }} ]
max_actions_per_cycle = 100
"""


class Background:
    """A call on its own (daemon) thread, as a scheduler job makes it; its error is kept."""

    def __init__(self, call: Callable[[], object]) -> None:
        self.error: BaseException | None = None

        def run() -> None:
            try:
                call()
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def finished_within(self, seconds: float) -> bool:
        self.thread.join(seconds)
        return not self.thread.is_alive()


def stoppable_client(harness: Harness, stopping: threading.Event) -> IncidentIOClient:
    """A client as the daemon has it: a real rate limiter, and the daemon's stop event."""
    return IncidentIOClient(
        base_url=harness.sandbox.base_url,
        api_key=harness.sandbox.api_key,
        rate_limiter=TokenBucket(rate_per_minute=1000),
        stopping=stopping,
    )


def answered_429(harness: Harness) -> bool:
    return any(r["status"] == 429 for r in harness.sandbox.requests())


# -- the client's waits ---------------------------------------------------------------------


def test_a_stop_ends_a_retry_after_wait_at_once(harness: Harness) -> None:
    """A 429 with Retry-After: 60 is waited on the stop event: setting it ends the call."""
    stopping = threading.Event()
    harness.sandbox.set_faults(next=[{"kind": "rate_limit", "retry_after": 60}])
    with stoppable_client(harness, stopping) as client:
        call = Background(client.list_severities)
        time.sleep(0.1)
        while not answered_429(harness):
            assert call.thread.is_alive(), call.error
            time.sleep(0.02)
        assert not call.finished_within(0.3), "the 429 is being waited out"
        stopping.set()
        assert call.finished_within(1.0), "the stop did not end the Retry-After wait"
    assert isinstance(call.error, APIUnavailable)
    assert call.error.status == 429
    assert len(harness.sandbox.requests()) == 1  # no retry after the stop


def test_a_stop_ends_the_rate_limiters_wait_after_a_long_retry_after(harness: Harness) -> None:
    """Retry-After: 120 (past the retry budget) parks the next call in the limiter; stop ends it."""
    stopping = threading.Event()
    harness.sandbox.set_faults(rate_limit_storm={"seconds": 120})
    with stoppable_client(harness, stopping) as client:
        with pytest.raises(APIUnavailable):
            client.list_severities()
        call = Background(client.list_severities)
        assert not call.finished_within(0.5), "the next call waits for the deferred token"
        assert len(harness.sandbox.requests()) == 1
        stopping.set()
        assert call.finished_within(1.0), "the stop did not end the rate limiter's wait"
    assert isinstance(call.error, APIUnavailable)


# -- the engine between steps ---------------------------------------------------------------


class StopAfterFirstApplied(logging.Handler):
    """Sets the stop when the engine logs its first applied action: a SIGTERM mid-cycle."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__(logging.INFO)
        self.stop = stop

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "fields", {}).get("outcome") == "applied":
            self.stop.set()


def test_a_stop_between_actions_claims_nothing_more_and_the_next_cycle_does_the_rest(
    harness: Harness,
) -> None:
    """The action in progress is applied; the rest is not claimed, and the next cycle does it."""
    harness.write(RULE.format(every="1m"))
    stuck = [harness.add(f"Stuck {n}", age=3 * H) for n in range(5)]
    stop = threading.Event()
    engine_log = logging.getLogger("automations.engine")
    handler = StopAfterFirstApplied(stop)
    engine_log.addHandler(handler)
    level = engine_log.level
    engine_log.setLevel(logging.INFO)
    runtime = harness.runtime()
    try:
        report = runtime.engine.run_cycle(runtime.rules, "every 1m", stop)
        unconfirmed = runtime.ledger.events.unconfirmed()
        recorded = runtime.ledger.events.history()
    finally:
        engine_log.removeHandler(handler)
        engine_log.setLevel(level)
        runtime.close()

    assert report.stopped
    assert report.applied == 1
    assert report.error is None
    assert "stopped early: the daemon is stopping" in report.line()
    assert unconfirmed == []
    assert [e.state for e in recorded] == [EventState.APPLIED]
    assert len(harness.posts()) == 1

    (again,) = harness.cycle()
    assert again.applied == 4
    assert not again.stopped
    edited = Counter(p["path"].split("/")[3] for p in harness.posts())
    assert edited == Counter({incident["id"]: 1 for incident in stuck})


class EndlessPages(httpx.HTTPTransport):
    """The sandbox's incident list, handing out a fresh cursor on every page (up to
    ``limit`` pages, so a test that fails still ends); ``on_page(n)`` hears of each page."""

    def __init__(self, on_page: Callable[[int], None], limit: int = 200) -> None:
        super().__init__()
        self.on_page = on_page
        self.limit = limit
        self.pages = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "GET" or request.url.path != "/v2/incidents":
            return super().handle_request(request)
        self.pages += 1
        self.on_page(self.pages)
        first_page = [(k, v) for k, v in request.url.params.multi_items() if k != "after"]
        forwarded = httpx.Request(
            "GET", request.url.copy_with(params=first_page), headers=request.headers
        )
        response = super().handle_request(forwarded)
        body: dict[str, Any] = json.loads(response.read())
        if self.pages < self.limit:
            body.setdefault("pagination_meta", {})["after"] = f"fresh-{self.pages}"
        return httpx.Response(
            response.status_code, json=body, headers={"date": response.headers["date"]}
        )


def test_a_stop_ends_endless_pagination_before_the_next_page(harness: Harness) -> None:
    """A server with a fresh cursor on every page: the poll stops at the page the stop came."""
    harness.write(RULE.format(every="1m"))
    harness.add("Young", age=1 * H)  # matches the rule's query, due for nothing
    stop = threading.Event()
    transport = EndlessPages(lambda page: stop.set() if page == 3 else None)
    runtime = harness.runtime()
    client = IncidentIOClient(
        base_url=harness.sandbox.base_url,
        api_key=harness.sandbox.api_key,
        rate_limiter=TokenBucket(rate_per_minute=600_000),
        transport=transport,
    )
    try:
        engine = Engine(client, runtime.ledger, runtime.catalog, clock=runtime.engine.clock)
        report = engine.run_cycle(runtime.rules, "every 1m", stop)
    finally:
        client.close()
        runtime.close()

    assert transport.pages == 3
    assert report.stopped
    assert report.planned == 0


# -- the outbox between sends ----------------------------------------------------------------

SECOND_DIGEST = """
[[digests]]
name = "weekly"
cron = "0 8 * * mon"
timezone = "Europe/London"
to = ["managers@example.com"]
"""


def test_a_stop_between_sends_keeps_the_rest_of_the_outbox_queued(
    sandbox: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """Two digests due: the stop comes as the first is sent, so the second stays queued."""
    sandbox.reset(incidents=0, now=T0)
    path = write_config(tmp_path, sandbox.base_url, smtp.port, more=SECOND_DIGEST)
    runtime, digests = open_digests(path, Clock(T0))
    stop = threading.Event()
    digests.outbox.stopping = stop

    def stop_on_send(_name: str, outcome: str) -> None:
        if outcome == "sent":
            stop.set()

    digests.events.delivery_listeners.append(stop_on_send)
    try:
        digests.tick()
        states = {name: dict(digests.ledger.outbox.periods(name)) for name in ("daily", "weekly")}
    finally:
        runtime.close()

    assert len(smtp.received) == 1
    assert sorted(state for periods in states.values() for state in periods.values()) == [
        OutboxState.PENDING,
        OutboxState.SENT,
    ]


# -- the real daemon ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "retry_after",
    [pytest.param(120, id="rate-limiter-holds-calls"), pytest.param(60, id="retry-waits")],
)
def test_sigterm_during_a_429_storm_exits_0_within_5_seconds(
    harness: Harness, retry_after: int
) -> None:
    """The real daemon in a 429 storm (Retry-After: 120 or 60) stops within 5 s of SIGTERM."""
    harness.write(RULE.format(every="1s"))
    daemon = DaemonProcess(harness)
    try:
        daemon.wait_for_line("cycle every 1s")
        harness.sandbox.clear_requests()
        harness.sandbox.set_faults(rate_limit_storm={"seconds": retry_after})
        daemon.wait_for(lambda: answered_429(harness), "a 429")
        time.sleep(1.5)  # waiting now: for the retry (60), or for a token in the next cycle (120)
        code, took = daemon.timed_stop()
    finally:
        daemon.kill()

    assert code == 0, daemon.log
    assert took < 5, f"took {took:.1f}s to stop:\n{daemon.log}"
    assert "received SIGTERM" in daemon.log
    assert "stopped early: the daemon is stopping" in daemon.log
    assert daemon.lines[-1].endswith("daemon stopped"), daemon.log
    assert "Traceback" not in daemon.log


def test_sigterm_mid_cycle_stops_between_actions_and_a_restart_does_each_once(
    harness: Harness,
) -> None:
    """SIGTERM mid-cycle: exit 0 in seconds, nothing claimed unsent, a restart does each once."""
    harness.write(RULE.format(every="1m"))
    stuck = [harness.add(f"Stuck {n}", age=3 * H) for n in range(30)]
    harness.sandbox.set_faults(latency_seconds=0.2, paths=["/v2/incidents"])
    daemon = DaemonProcess(harness)
    try:
        daemon.wait_for(lambda: len(harness.posts()) >= 2, "two edits")
        code, took = daemon.timed_stop()
    finally:
        daemon.kill()

    assert code == 0, daemon.log
    assert took < 5, f"took {took:.1f}s to stop:\n{daemon.log}"
    signalled = next(i for i, line in enumerate(daemon.lines) if "received SIGTERM" in line)
    cycles_after = [line for line in daemon.lines[signalled:] if "cycle every 1m" in line]
    assert len(cycles_after) == 1, daemon.log  # the cycle in progress; no new one
    assert "stopped early: the daemon is stopping" in cycles_after[0]
    posted = {p["path"].split("/")[3] for p in harness.posts()}
    with Ledger(harness.ledger_path) as ledger:
        applied = ledger.events.history(states=[EventState.APPLIED])
        unsent = [e.event_key for e in ledger.events.unconfirmed() if e.incident_id not in posted]
    assert 1 <= len(applied) < 30
    assert unsent == []

    harness.sandbox.clear_faults()
    again = harness.cli("once")
    assert again.returncode == 0, again.stderr
    assert all(harness.severity(incident["id"]) == "Major" for incident in stuck)
    landed = Counter(
        r["path"].split("/")[3]
        for r in harness.sandbox.requests()
        if r["path"].endswith("/actions/edit") and r["status"] == 200
    )
    assert landed == Counter({incident["id"]: 1 for incident in stuck})
