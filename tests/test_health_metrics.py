"""/healthz and /metrics: the verdict's rules, and a real daemon serving both."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import stamina
from prometheus_client.parser import text_string_to_metric_families

from automations.engine import CycleReport, RuleOutcome
from automations.errors import APIRejected, APIUnavailable, LedgerError
from automations.incidentio import IncidentEdit
from automations.metrics import Metrics, cycle_failure, default_stale_after, failure_reason
from automations.rules.base import PlannedAction
from tests.digest_support import free_port
from tests.engine_harness import Harness
from tests.test_engine_sandbox import ESCALATE
from tests.upstream_proxy import UpstreamProxy

H = timedelta(hours=1)


def _report(ok: bool) -> CycleReport:
    report = CycleReport("every 1m", datetime(2026, 1, 1, tzinfo=UTC))
    report.rules.append(RuleOutcome("r"))
    if not ok:
        report.cause = APIUnavailable(
            "GET /v2/incidents failed: HTTP 503", status=503, method="GET", route="/v2/incidents"
        )
        report.error = f"APIUnavailable: {report.cause}"
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


def test_healthz_reasons_never_repeat_upstream_text(harness: Harness) -> None:
    """A cycle failed by the API: /healthz names the status, call and class, none of its words."""
    from automations.health_server import HealthServer

    harness.write(ESCALATE)
    with UpstreamProxy(harness.sandbox.base_url) as proxy:
        text = harness.config_path.read_text()
        harness.config_path.write_text(text.replace(harness.sandbox.base_url, proxy.base_url))
        runtime = harness.runtime()
        metrics = Metrics(stale_after=timedelta(minutes=5))
        server = HealthServer(metrics, host="127.0.0.1", port=0).start()
        try:
            proxy.answer_with(
                503,
                {
                    "type": f"type_{UPSTREAM_TEXT}",
                    "status": 503,
                    "request_id": f"req_{UPSTREAM_TEXT}",
                    "errors": [{"code": UPSTREAM_TEXT, "message": f"echo {UPSTREAM_TEXT}"}],
                },
            )
            with stamina.set_testing(True, attempts=1):
                metrics.observe_cycle(runtime.engine.run_cycle(runtime.rules, "every 1m"))
            response = httpx.get(f"{server.url}/healthz")
        finally:
            server.stop()
            runtime.close()

    assert response.status_code == 503
    assert UPSTREAM_TEXT not in response.text
    assert response.json()["reason"] == (
        "the last cycle failed: the API answered 503 to GET /v2/incidents (APIUnavailable)"
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
    report.rules = [RuleOutcome("broken", error=f"KeyError: {echo}"), RuleOutcome("edits")]
    action = PlannedAction("edits", "01X", "INC-1", echo, "edits/01X/1", echo, IncidentEdit(), True)
    report.rules[1].failed = [(action, echo), (action, echo)]
    assert cycle_failure(report) == (
        "rule broken could not evaluate; 2 actions failed (rule edits)"
    )


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
    process = subprocess.Popen(
        command,
        env=harness.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=limit,
    )
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
    from automations.daemon import Daemon
    from automations.digest.events import DELIVERY_LISTENERS, on_delivery
    from tests.digest_support import write_config

    write_config(
        harness.tmp_path, harness.sandbox.base_url, free_port(),
        more="[server]\nenabled = true\nport = 0\n",
    )  # fmt: skip
    runtime = harness.runtime()
    daemon = Daemon(runtime)
    try:
        daemon.serve_health()
        assert daemon.health_server is not None
        on_delivery("daily", "sent")
        on_delivery("daily", "failed")
        on_delivery("daily", "sent")
        samples = metric_samples(httpx.get(f"{daemon.health_server.url}/metrics").text)
    finally:
        daemon.stop_health()
        runtime.close()

    assert samples[("automations_digests_total", (("digest", "daily"), ("outcome", "sent")))] == 2
    assert samples[("automations_digests_total", (("digest", "daily"), ("outcome", "failed")))] == 1
    assert DELIVERY_LISTENERS == []
