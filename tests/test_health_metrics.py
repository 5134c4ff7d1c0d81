"""/healthz and /metrics: the verdict's rules, and a real daemon serving both."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import stamina
from prometheus_client.parser import text_string_to_metric_families

from automations.clock import host_now
from automations.config import load_config
from automations.cycle_report import CycleReport, RuleOutcome
from automations.daemon import Daemon
from automations.digest.service import Digests
from automations.errors import APIRejected, APIUnavailable, LedgerError
from automations.failures import CycleFailure, RuleFailure
from automations.incidentio import IncidentEdit
from automations.metrics import (
    DIGEST_FAILING_AFTER,
    Metrics,
    cycle_failure,
    default_stale_after,
    failure_reason,
)
from automations.rules.base import PlannedAction
from tests.digest_support import SMTPServer, free_port, in_use_since, write_config
from tests.engine_harness import Harness
from tests.hostile_proxy import Answer, HostileProxy
from tests.test_engine_sandbox import ESCALATE

H = timedelta(hours=1)


def _report(ok: bool) -> CycleReport:
    report = CycleReport("every 1m", datetime(2026, 1, 1, tzinfo=UTC))
    report.rules.append(RuleOutcome("r"))
    if not ok:
        report.failure = CycleFailure(
            "read",
            APIUnavailable(
                "GET /v2/incidents failed: HTTP 503",
                status=503,
                method="GET",
                route="/v2/incidents",
            ),
        )
    return report


def test_health_is_ok_while_starting_then_needs_a_recent_successful_cycle() -> None:
    metrics = Metrics(stale_after=timedelta(minutes=5))
    start = metrics.started
    assert metrics.health(start + 10).ok
    late = metrics.health(start + 301)
    assert not late.ok
    assert "no cycle has succeeded" in late.reason

    metrics.observe_cycle(_report(ok=True))
    assert metrics.health().ok
    assert not metrics.health(time.time() + 301).ok


def test_a_failed_last_cycle_is_unhealthy_with_its_reason() -> None:
    metrics = Metrics(stale_after=timedelta(minutes=5))
    metrics.observe_cycle(_report(ok=True))
    metrics.observe_cycle(_report(ok=False))

    verdict = metrics.health()

    assert not verdict.ok
    assert "the API answered 503 to GET /v2/incidents" in verdict.reason
    metrics.observe_cycle(_report(ok=True))
    assert metrics.health().ok


UPSTREAM_TEXT = "upstream-echo-Q7zX"  # what a hostile or chatty API wrote into its error


@pytest.mark.parametrize(
    ("method", "route"),
    [("GET", "/v2/incidents"), ("POST", "/v2/incidents/{id}/actions/edit")],
)
def test_healthz_reasons_never_repeat_upstream_text(
    harness: Harness, hostile: HostileProxy, method: str, route: str
) -> None:
    """A cycle the API failed (listing, or an edit: given up): status, call and class only."""
    from automations.health_server import HealthServer

    harness.write(ESCALATE, base_url=hostile.url)
    harness.add("Stuck", age=3 * H)
    runtime = harness.runtime()
    metrics = Metrics(stale_after=timedelta(minutes=5))
    server = HealthServer(metrics, host="127.0.0.1", port=0).start()
    envelope = json.dumps(
        {
            "type": f"type_{UPSTREAM_TEXT}",
            "status": 503,
            "request_id": f"req_{UPSTREAM_TEXT}",
            "errors": [{"code": UPSTREAM_TEXT, "message": f"echo {UPSTREAM_TEXT}"}],
        }
    ).encode()
    hostile.answer = lambda exchange: (
        Answer(503, {"content-type": "application/json"}, envelope)
        if exchange.method == method and exchange.path.endswith(route.rsplit("}", 1)[-1])
        else None
    )
    try:
        with stamina.set_testing(True, attempts=1):
            metrics.observe_cycle(runtime.engine.run_cycle(runtime.rules, "every 1m"))
        response = httpx.get(f"{server.url}/healthz")
    finally:
        server.stop()
        runtime.close()

    assert response.status_code == 503
    assert UPSTREAM_TEXT not in response.text
    assert response.json()["reason"] == (
        f"the last cycle failed: the API answered 503 to {method} {route} (APIUnavailable)"
    )


def test_failure_reasons_are_in_our_own_words() -> None:
    """Each kind of failure has its wording: status and call, no answer, ledger, rules."""
    echo = f"echo {UPSTREAM_TEXT}"
    dropped = APIUnavailable(echo, method="GET", route="/v2/incidents/{id}")
    assert failure_reason(dropped) == (
        "no answer from the API to GET /v2/incidents/{id} (APIUnavailable)"
    )
    assert failure_reason(APIRejected(echo, status=401)) == "the API answered 401 (APIRejected)"
    assert failure_reason(LedgerError(echo)) == "the ledger failed (LedgerError)"

    report = _report(ok=True)
    broken = RuleFailure("broken", "evaluate", KeyError(echo))
    report.rules = [RuleOutcome("broken", failure=broken), RuleOutcome("edits")]
    action = PlannedAction("edits", "01X", "INC-1", echo, "edits/01X/1", echo, IncidentEdit(), True)
    refused = APIRejected(echo, status=422)
    report.rules[1].failed = [(action, refused), (action, refused)]
    assert cycle_failure(report) == (
        "rule broken could not evaluate; 2 actions failed (rule edits)"
    )


def test_a_digest_is_unhealthy_after_failing_for_the_threshold_until_sent() -> None:
    """Failures start a streak; past DIGEST_FAILING_AFTER it is a problem; a send ends it."""
    metrics = Metrics(stale_after=timedelta(hours=1))
    metrics.observe_cycle(_report(ok=True))
    metrics.observe_digest_failure("daily", "build")
    metrics.observe_digest_failure("daily", "send")  # a later stage: the streak goes on
    start = host_now().timestamp()
    limit = DIGEST_FAILING_AFTER.total_seconds()

    before = metrics.health(start + limit - 60)
    after = metrics.health(start + limit + 60)
    metrics.observe_digest("daily", "sent")

    assert before.ok
    assert "digest daily failing for 14m" in before.reason
    assert not after.ok
    assert after.reason.startswith("digest daily has failed every attempt for 16m")
    assert metrics.health(start + limit + 60).reason.endswith("; digests ok")


def test_default_staleness_follows_the_slowest_schedule(harness: Harness) -> None:
    harness.write(ESCALATE.replace('"1m"', '"10m"'))
    runtime = harness.runtime()
    try:
        assert default_stale_after(runtime.rules) == timedelta(minutes=30)
        assert default_stale_after([]) == timedelta(minutes=5)
    finally:
        runtime.close()


@contextmanager
def running_daemon(harness: Harness, *, max_open_files: int | None = None) -> Iterator[int]:
    """``automations run`` in a subprocess (its pid), stopped with SIGTERM and checked to exit 0.

    ``max_open_files`` lowers its descriptor limit (RLIMIT_NOFILE), as a small ulimit would.
    """

    def limit() -> None:
        if max_open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_open_files, max_open_files))

    command = [sys.executable, "-m", "automations", "run", "--config", str(harness.config_path)]
    with subprocess.Popen(
        command,
        env=harness.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=limit,
    ) as process:
        try:
            yield process.pid
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                _, stderr = process.communicate(timeout=30)
                harness.outputs.append(stderr)  # searched for secrets after the test
            finally:
                process.kill()
        assert process.returncode == 0, stderr[-2000:]


@contextmanager
def _daemon(harness: Harness, port: int) -> Iterator[str]:
    with running_daemon(harness):
        yield f"http://127.0.0.1:{port}"


def wait_for(url: str, predicate: str, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(url, timeout=5)
            if predicate in response.text:
                return response
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} never showed {predicate!r}")
        time.sleep(0.2)


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_running_daemon_serves_health_and_its_actions_as_metrics(harness: Harness) -> None:
    """A real daemon: /healthz 200, its edit and API calls in /metrics, healthcheck exit 0."""
    port = free_port()
    harness.write(f"[server]\nenabled = true\nport = {port}\n" + ESCALATE.replace('"1m"', '"5s"'))
    harness.add("Stuck", age=3 * H)

    with _daemon(harness, port) as url:
        metrics = wait_for(f"{url}/metrics", "automations_actions_total{").text
        health = httpx.get(f"{url}/healthz")
        check = harness.cli("healthcheck")

    samples = metric_samples(metrics)
    applied = (("outcome", "applied"), ("rule", "escalate-minor"))
    assert samples[("automations_actions_total", applied)] == 1
    assert samples[("automations_cycles_total", (("outcome", "ok"), ("schedule", "every 5s")))] >= 1
    edits = (("method", "POST"), ("route", "/v2/incidents/{id}/actions/edit"), ("status", "200"))
    assert samples[("automations_api_requests_total", edits)] == 1
    assert samples[("automations_api_request_seconds_count", edits[:2])] == 1
    assert samples[("automations_last_successful_cycle_timestamp_seconds", ())] > 0
    assert health.status_code == 200
    assert health.json()["ok"] is True
    assert check.returncode == 0, check.stderr


def test_health_turns_503_when_the_api_keeps_failing(harness: Harness) -> None:
    """The API failing every call: /healthz 503 naming the status, healthcheck exit 1."""
    port = free_port()
    harness.write(f"[server]\nenabled = true\nport = {port}\n" + ESCALATE.replace('"1m"', '"2s"'))
    with _daemon(harness, port) as url:
        wait_for(f"{url}/metrics", 'outcome="ok"')  # started: catalog and a first cycle
        harness.sandbox.set_faults(error_rate=1.0, error_status=500)
        response = wait_for(f"{url}/healthz", "the last cycle failed")
        check = harness.cli("healthcheck")
        harness.sandbox.clear_faults()

    assert response.status_code == 503
    assert "500" in response.json()["reason"]
    assert check.returncode == 1
    assert "unhealthy: the last cycle failed" in check.stderr


def test_digest_deliveries_are_counted_in_metrics(harness: Harness) -> None:
    """Delivery events reach /metrics (a failed send also as stage send); listeners removed."""
    write_config(
        harness.tmp_path, harness.sandbox.base_url, free_port(),
        more="[server]\nenabled = true\nport = 0\n",
    )  # fmt: skip
    runtime = harness.runtime()
    daemon = Daemon(runtime)
    try:
        daemon.serve_health()
        assert daemon.health_server is not None
        events = runtime.digest_events  # what the runtime's digests report to
        events.on_delivery("daily", "sent")
        events.on_delivery("daily", "failed")
        events.on_delivery("daily", "sent")
        samples = metric_samples(httpx.get(f"{daemon.health_server.url}/metrics").text)
    finally:
        daemon.stop_health()
        runtime.close()

    assert samples[("automations_digests_total", (("digest", "daily"), ("outcome", "sent")))] == 2
    assert samples[("automations_digests_total", (("digest", "daily"), ("outcome", "failed")))] == 1
    assert (
        samples[("automations_digest_failures_total", (("digest", "daily"), ("stage", "send")))]
        == 1
    )
    assert events.delivery_listeners == []
    assert events.failure_listeners == []


BROKEN_DIGEST = """
[[digests]]
name = "broken"
cron = "* * * * *"
timezone = "UTC"
to = ["oncall@example.com"]
subject = "{{ digest.no_such_field }}"
"""
SERVER = "\n[server]\nenabled = true\nport = 0\n"


@dataclass
class DigestDaemon:
    digests: Digests
    metrics: Metrics
    url: str  # of /healthz and /metrics

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return metric_samples(httpx.get(f"{self.url}/metrics").text)


@contextmanager
def digest_daemon(harness: Harness, smtp: SMTPServer, more: str = "") -> Iterator[DigestDaemon]:
    """A daemon's digests (a working "daily", due now) and its metrics, served; no scheduler."""
    config = write_config(
        harness.tmp_path, harness.sandbox.base_url, smtp.port,
        cron="* * * * *", timezone="UTC", more=more + SERVER,
    )  # fmt: skip
    for options in load_config(config).digests:  # a ledger in use since yesterday: all due
        in_use_since(harness.ledger_path, options.name, host_now() - timedelta(days=1))
    runtime = harness.runtime()
    daemon = Daemon(runtime)
    try:
        daemon.serve_health()
        assert daemon.digests is not None
        assert daemon.metrics is not None
        assert daemon.health_server is not None
        yield DigestDaemon(daemon.digests, daemon.metrics, daemon.health_server.url)
    finally:
        daemon.stop_health()
        runtime.close()


def test_a_digest_that_keeps_failing_shows_in_metrics_and_health(
    harness: Harness, smtp: SMTPServer
) -> None:
    """A digest failing to render: counted by stage, /healthz 503 naming it; others still go out."""
    with digest_daemon(harness, smtp, BROKEN_DIGEST) as daemon:
        daemon.digests.tick()  # start-up's catch-up: both due
        daemon.digests.tick()  # the outbox check 30s later
        samples = daemon.scrape()
        now = host_now().timestamp()
        soon = daemon.metrics.health(now + 60)
        later = daemon.metrics.health(now + DIGEST_FAILING_AFTER.total_seconds() + 60)
        daemon.metrics.digest_failing_after = timedelta(0)  # over HTTP, without waiting
        response = httpx.get(f"{daemon.url}/healthz")

    broken = (("digest", "broken"), ("stage", "render"))
    assert samples[("automations_digest_failures_total", broken)] == 2
    assert samples[("automations_digests_total", (("digest", "daily"), ("outcome", "sent")))] == 1
    assert len(smtp.received) == 1
    assert soon.ok, soon.reason
    assert not later.ok
    assert later.reason.startswith("digest broken has failed every attempt for 16m")
    assert later.reason.endswith("(last: render)")
    assert response.status_code == 503
    assert response.json()["reason"].startswith("digest broken has failed every attempt for ")


def test_digest_build_failures_are_counted_and_a_sent_digest_clears_them(
    harness: Harness, smtp: SMTPServer
) -> None:
    """The API failing a digest's fetch counts as stage build; its next send makes health ok."""
    with digest_daemon(harness, smtp) as daemon:
        harness.sandbox.set_faults(error_rate=1.0, error_status=503)
        with stamina.set_testing(True, attempts=1):
            daemon.digests.tick()
        harness.sandbox.clear_faults()
        failing = daemon.metrics.health(host_now().timestamp() + 3600)
        daemon.digests.tick()
        samples = daemon.scrape()
        healed = daemon.metrics.health(host_now().timestamp() + 3600)

    build = (("digest", "daily"), ("stage", "build"))
    assert samples[("automations_digest_failures_total", build)] == 1
    assert "digest daily has failed every attempt" in failing.reason
    assert "(last: build)" in failing.reason
    assert healed.ok, healed.reason  # a daemon with digests and no rules needs no cycles
    assert healed.reason == "no rules to run; digests ok"


class _SomethingElse(BaseHTTPRequestHandler):
    """Another program's web server on the health port: a page, or a proxy's error page."""

    answer: tuple[int, bytes] = (200, b"<html>hello</html>")

    def do_GET(self) -> None:
        status, body = self.answer
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@contextmanager
def something_else(status: int, body: bytes) -> Iterator[int]:
    handler = type("Handler", (_SomethingElse,), {"answer": (status, body)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_against_another_program_is_one_line_and_exit_1(
    harness: Harness, smtp: SMTPServer
) -> None:
    """A web page, a proxy's 502 page or an SMTP server on the port: one clear line, exit 1."""
    results = []
    for status, body in ((200, b"<html>hello</html>"), (502, b"<html>Bad Gateway</html>")):
        with something_else(status, body) as port:
            harness.write(f"[server]\nenabled = true\nport = {port}\n")
            results.append(harness.cli("healthcheck"))
    harness.write(f"[server]\nenabled = true\nport = {smtp.port}\n")
    results.append(harness.cli("healthcheck"))

    for result in results:
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    page, bad_gateway, mail = (r.stderr for r in results)
    assert "answered 200 without the health JSON" in page
    assert "answered 502 without the health JSON" in bad_gateway
    assert f"127.0.0.1:{smtp.port}" in mail
    assert "not HTTP" in mail
