"""SMTP on a bad day: TLS required but absent, a login refused, a password that must not leak."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from automations.clock import host_now
from automations.ledger import OutboxItem, OutboxState
from tests.digest_support import (
    Clock,
    SMTPServer,
    free_port,
    in_use_since,
    open_digests,
    tick_ok,
    write_config,
)
from tests.engine_harness import Harness
from tests.sandbox_server import SandboxControl
from tests.secret_values import SMTP_PASSWORD
from tests.test_engine_sandbox import ESCALATE

T0 = datetime(2026, 11, 23, 8, 0, 30, tzinfo=UTC)
PERIOD = "2026-11-23T08:00:00+00:00"

# AUTH over plain SMTP is fine on loopback; aiosmtpd warns about it in any case.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture
def org(sandbox: SandboxControl) -> SandboxControl:
    sandbox.reset(incidents=0, now=T0)
    sandbox.add_incident(
        name="Checkout latency", created_at=(T0 - timedelta(hours=1)).isoformat(),
        status="Investigating", severity="Minor",
    )  # fmt: skip
    return sandbox


class _Authenticator:
    """Accepts one user with SMTP_PASSWORD; remembers what it was offered."""

    def __init__(self) -> None:
        self.offered: list[tuple[str, str]] = []

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        user, password = (
            v.decode() if isinstance(v, bytes) else str(v)
            for v in (auth_data.login, auth_data.password)
        )
        self.offered.append((user, password))
        return AuthResult(
            success=user == "incident-bot" and password == SMTP_PASSWORD, handled=False
        )


class AuthSMTPServer(SMTPServer):
    """The test server, requiring AUTH (over plain SMTP: loopback only)."""

    def __init__(self) -> None:
        super().__init__()
        self.authenticator = _Authenticator()

    def start(self) -> AuthSMTPServer:
        self._controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port,
            authenticator=self.authenticator, auth_required=True, auth_require_tls=False,
        )  # fmt: skip
        self._controller.start()
        return self


@pytest.fixture
def auth_smtp() -> Iterator[AuthSMTPServer]:
    server = AuthSMTPServer().start()
    try:
        yield server
    finally:
        server.stop()


def _config(tmp_path: Path, org: SandboxControl, port: int, security: str = "none") -> Path:
    path = write_config(tmp_path, org.base_url, port)
    text = path.read_text().replace('security = "none"', f'security = "{security}"')
    text = text.replace("[smtp]\n", '[smtp]\nusername = "incident-bot"\n', 1)
    path.write_text(text)
    return path


def test_login_with_the_password_from_the_environment_delivers(
    org: SandboxControl, tmp_path: Path, auth_smtp: AuthSMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOMATIONS_SMTP_PASSWORD", SMTP_PASSWORD)
    runtime, digests = open_digests(_config(tmp_path, org, auth_smtp.port), Clock(T0))
    try:
        tick_ok(digests)
    finally:
        runtime.close()

    assert auth_smtp.authenticator.offered == [("incident-bot", SMTP_PASSWORD)]
    assert len(auth_smtp.received) == 1


def test_a_refused_login_is_reported_and_retried_without_the_password(
    org: SandboxControl, tmp_path: Path, auth_smtp: AuthSMTPServer,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.setenv("AUTOMATIONS_SMTP_PASSWORD", SMTP_PASSWORD + "-old")
    clock = Clock(T0)
    runtime, digests = open_digests(_config(tmp_path, org, auth_smtp.port), clock)
    try:
        with caplog.at_level(logging.DEBUG):
            assert not digests.tick()
        item = runtime.ledger.outbox.find("daily", PERIOD)
        # The password is rotated: the queued digest goes out on the next attempt, once.
        monkeypatch.setenv("AUTOMATIONS_SMTP_PASSWORD", SMTP_PASSWORD)
        runtime.close()
        runtime, digests = open_digests(_config(tmp_path, org, auth_smtp.port), clock)
        clock.advance(minutes=2)
        tick_ok(digests)
        sent = runtime.ledger.outbox.find("daily", PERIOD)
    finally:
        runtime.close()

    assert item is not None
    assert item.state == OutboxState.PENDING
    assert item.last_error is not None
    assert "login failed" in item.last_error
    assert "535" in item.last_error
    assert sent is not None
    assert sent.state == OutboxState.SENT
    assert len(auth_smtp.received) == 1
    assert "login failed" in caplog.text
    assert SMTP_PASSWORD not in caplog.text
    assert SMTP_PASSWORD not in (item.last_error or "")
    assert SMTP_PASSWORD.encode() not in (tmp_path / "ledger.db").read_bytes()


def _one_failed_attempt(
    tmp_path: Path,
    org: SandboxControl,
    server: SMTPServer,
    security: str,
    caplog: pytest.LogCaptureFixture,
) -> OutboxItem | None:
    """Queue the digest and try it once against ``server``; the outbox item afterwards."""
    runtime, digests = open_digests(_config(tmp_path, org, server.port, security), Clock(T0))
    try:
        with caplog.at_level(logging.WARNING):
            assert not digests.tick()
        return runtime.ledger.outbox.find("daily", PERIOD)
    finally:
        runtime.close()
        server.stop()


def test_starttls_required_but_not_offered_is_reported_clearly_and_kept(
    org: SandboxControl, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("AUTOMATIONS_SMTP_PASSWORD", SMTP_PASSWORD)
    server = SMTPServer().start()  # plain SMTP: no STARTTLS
    item = _one_failed_attempt(tmp_path, org, server, "starttls", caplog)

    assert server.received == [], "nothing is sent in clear text when TLS is required"
    assert item is not None
    assert item.state == OutboxState.PENDING, "kept for a retry once the server offers TLS"
    assert item.last_error is not None
    assert "STARTTLS" in item.last_error
    assert "STARTTLS" in caplog.text
    assert SMTP_PASSWORD not in caplog.text


def test_tls_on_a_plain_port_is_reported_clearly(
    org: SandboxControl, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = SMTPServer().start()
    item = _one_failed_attempt(tmp_path, org, server, "tls", caplog)

    assert server.received == []
    assert item is not None
    assert item.state == OutboxState.PENDING
    assert item.last_error is not None
    assert "TLS" in item.last_error or "SSL" in item.last_error
    assert free_port() != server.port


def test_a_silent_smtp_server_does_not_hold_back_rule_cycles(harness: Harness) -> None:
    """A send waiting on SMTP (up to its timeout) runs beside rule cycles, not before them."""
    from automations.daemon import Daemon

    with socket.socket() as silent:  # accepts connections, never says hello
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        path = write_config(
            harness.tmp_path, harness.sandbox.base_url, silent.getsockname()[1],
            cron="* * * * *", timezone="UTC", extra='catch_up_grace = "5m"\n', more=ESCALATE,
        )  # fmt: skip
        path.write_text(path.read_text().replace("timeout_seconds = 30", "timeout_seconds = 4"))
        # A ledger in use since yesterday: the minute just past is a digest to send (a new
        # ledger's first start would send none).
        in_use_since(harness.ledger_path, "daily", host_now() - timedelta(days=1))
        stuck = harness.add("Stuck", age=timedelta(hours=3))
        runtime = harness.runtime()
        daemon = Daemon(runtime)
        daemon.add_jobs()  # the scheduler is not started: the test runs the jobs itself
        try:
            sending = threading.Thread(target=daemon.digest_jobs.run_outbox)
            sending.start()
            time.sleep(0.5)
            assert sending.is_alive(), "the digest is waiting for the SMTP greeting"
            started = time.monotonic()
            daemon._job("every 1m")
            took = time.monotonic() - started
            sending.join(10)
        finally:
            runtime.close()

    assert took < 2, f"the rule cycle waited {took:.1f}s for SMTP"
    assert harness.severity(stuck["id"]) == "Major"
