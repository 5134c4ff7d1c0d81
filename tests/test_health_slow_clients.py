"""The health port under attack: slow clients starve neither the daemon nor its /healthz.

The attacker holds 300 connections, half sending nothing and half sending a
request head one byte per round; whichever the server closes is opened again
at the next round, as slowloris does. The daemon runs with 64 descriptors
(a small ulimit), so a server that keeps every connection runs out of them:
the thread-per-connection server did, and then answered nothing.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import httpx
import pytest

from automations.health_client import TIMEOUT as HEALTHCHECK_TIMEOUT
from automations.health_server import HealthServer
from automations.metrics import Metrics
from tests.digest_support import free_port
from tests.engine_harness import Harness
from tests.slow_clients import TRICKLE, SlowClients
from tests.test_engine_sandbox import ESCALATE
from tests.test_health_metrics import metric_samples, running_daemon, wait_for


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def timed_get(url: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.get(url, timeout=HEALTHCHECK_TIMEOUT)
    return response, time.monotonic() - started


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_slow_clients_neither_starve_the_daemon_nor_delay_healthz(harness: Harness) -> None:
    """300 slow clients, 64 descriptors: /healthz within 4s, fds bounded, edits still made."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    harness.write(f"[server]\nenabled = true\nport = {port}\n" + ESCALATE.replace('"1m"', '"2s"'))
    answers: list[tuple[httpx.Response, float]] = []
    with running_daemon(harness, max_open_files=64) as pid:
        wait_for(f"{url}/metrics", 'outcome="ok"')  # started: catalog and a first cycle
        baseline = peak = open_files(pid)
        with SlowClients("127.0.0.1", port, 300) as attack:
            attack.wait_rounds(2)
            stuck = harness.add("Stuck", age=timedelta(hours=3))  # needs an edit, mid-attack
            for _ in range(3):
                answers.append(timed_get(f"{url}/healthz"))
                peak = max(peak, open_files(pid))
                attack.wait_rounds(1)
            check = harness.cli("healthcheck")
            deadline = time.monotonic() + 20
            while harness.severity(stuck["id"]) != "Major" and time.monotonic() < deadline:
                peak = max(peak, open_files(pid))
                time.sleep(0.2)
            escalated = harness.severity(stuck["id"])
            metrics = metric_samples(timed_get(f"{url}/metrics")[0].text)

    assert attack.opened >= 300
    assert [(r.status_code, r.json()["ok"]) for r, _ in answers] == [(200, True)] * 3
    assert max(seconds for _, seconds in answers) < HEALTHCHECK_TIMEOUT
    assert check.returncode == 0, check.stderr
    assert escalated == "Major"  # the daemon's API calls kept working
    assert peak <= baseline + 64 // 4 + 8, (baseline, peak)  # a quarter of the limit
    dropped = sum(v for (name, _), v in metrics.items() if name == "automations_http_dropped_total")
    assert dropped > 0  # the attack shows in /metrics


@contextmanager
def serving(
    host: str,
    *,
    max_connections: int | None = None,
    request_timeout: float = 5,
    grace: float = 0.25,
) -> Iterator[HealthServer]:
    server = HealthServer(
        Metrics(stale_after=timedelta(minutes=5)),
        host=host,
        port=0,
        max_connections=max_connections,
        request_timeout=request_timeout,
        grace=grace,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_connections_are_capped_and_the_newest_is_served() -> None:
    """Over the cap the longest-waiting connection makes room: 40 slow ones leave 8, healthz ok."""
    with serving("127.0.0.1", max_connections=8, request_timeout=30, grace=0.05) as server:
        host, port = server.address
        with SlowClients(host, port, 40, round_seconds=0.05, reconnect=False) as attack:
            attack.wait_rounds(3)
            response, seconds = timed_get(f"{server.url}/healthz")
            held = server.open_connections
    assert response.status_code == 200
    assert seconds < 1
    assert held <= 8


def test_a_request_head_must_arrive_within_the_request_timeout() -> None:
    """A head trickled byte by byte is cut off at request_timeout; a prompt one is answered."""
    with serving("127.0.0.1", request_timeout=0.5) as server:
        with socket.create_connection(server.address[:2], timeout=5) as slow:
            started = time.monotonic()
            closed_after = None
            for byte in TRICKLE[:40]:
                try:
                    slow.send(bytes([byte]))
                except OSError:
                    closed_after = time.monotonic() - started
                    break
                time.sleep(0.05)
                slow.setblocking(False)
                try:
                    if slow.recv(1024) == b"":
                        closed_after = time.monotonic() - started
                        break
                except BlockingIOError:
                    pass
                except OSError:
                    closed_after = time.monotonic() - started
                    break
                finally:
                    slow.setblocking(True)
        assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert closed_after is not None, "a 2s trickle was never cut off"
    assert 0.4 < closed_after < 1.5


def _read_until(sock: socket.socket, count: int, marker: bytes) -> bytes:
    """What the server sent until ``marker`` was seen ``count`` times (or it closed)."""
    data = b""
    while data.count(marker) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_the_server_speaks_plain_http() -> None:
    """Pipelined keep-alive, HEAD without body, 404, 405 with Allow, 431, 400 for garbage."""
    with serving("127.0.0.1") as server:
        with socket.create_connection(server.address, timeout=5) as sock:
            sock.sendall(
                b"GET /healthz?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"
                b"HEAD /healthz HTTP/1.1\r\nHost: h\r\n\r\n"
                b"GET /metrics HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
            )
            pipelined = _read_until(sock, 3, b"HTTP/1.1 200 OK")
            closed = sock.recv(1) == b""
        missing = httpx.get(f"{server.url}/nope")
        post = httpx.post(f"{server.url}/healthz")
        big = httpx.get(f"{server.url}/healthz", headers={"X-Big": "a" * 10_000})
        with socket.create_connection(server.address, timeout=5) as sock:
            sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            garbage = _read_until(sock, 1, b"\r\n\r\n")

    assert pipelined.count(b"HTTP/1.1 200 OK") == 3
    assert pipelined.count(b'"ok": true') == 1  # the HEAD answer has headers only
    assert b"automations_http_dropped_total" in pipelined
    assert closed
    assert (missing.status_code, post.status_code) == (404, 405)
    assert post.headers["allow"] == "GET, HEAD"
    assert big.status_code == 431
    assert garbage.startswith(b"HTTP/1.1 400 Bad Request")


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(
    not _ipv6_loopback(), reason="this kernel has no IPv6 (cannot bind ::1)"
)


@needs_ipv6
def test_an_ipv6_host_is_served() -> None:
    """host = "::1" listens on IPv6 loopback; its URL is bracketed."""
    with serving("::1") as server:
        response = httpx.get(f"{server.url}/healthz")
    assert server.url.startswith("http://[::1]:")
    assert response.status_code == 200


@needs_ipv6
def test_the_ipv6_any_address_serves_both_families() -> None:
    """host = "::" answers on [::1] and, where the kernel allows dual stack, on 127.0.0.1."""
    with serving("::") as server:
        port = server.address[1]
        six = httpx.get(f"http://[::1]:{port}/healthz")
        four = httpx.get(f"http://127.0.0.1:{port}/healthz") if socket.has_dualstack_ipv6() else six
    assert (six.status_code, four.status_code) == (200, 200)


@needs_ipv6
def test_healthcheck_asks_an_ipv6_server(harness: Harness) -> None:
    """`automations healthcheck` with host = "::1" connects to [::1]:port and exits 0."""
    with serving("::1") as server:
        harness.write(f'[server]\nenabled = true\nhost = "::1"\nport = {server.address[1]}\n')
        check = harness.cli("healthcheck")
    assert check.returncode == 0, check.stderr
    assert "starting" in check.stdout
