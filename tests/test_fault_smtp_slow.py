"""A server that trickles its answers cannot hold a send: smtp.timeout_seconds bounds it all.

smtplib's own timeout bounds each socket call, and a reply that arrives one
byte at a time never trips it. These servers trickle at different points of
the conversation (the greeting, the reply to RCPT, the TLS handshake); each
send gives up after about ``timeout_seconds`` and the digest stays queued.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from automations.ledger import OutboxState
from tests.digest_support import Clock, open_digests, write_config
from tests.sandbox_server import SandboxControl
from tests.test_digest_delivery import T0, add

PERIOD = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
KEY = "2026-11-23T08:00:00+00:00"
TIMEOUT = 1.5
MARGIN = 1.5  # a loaded CI machine; before the fix it took TRICKLE_FOR
TRICKLE_EVERY = 0.2  # far below TIMEOUT: no single socket call ever times out
TRICKLE_FOR = 10.0  # how long a send took before the fix (then the server hangs up)
# A TLS handshake record header announcing 16 KB, then never quite finishing it.
TLS_RECORD = b"\x16\x03\x03\x40\x00"


class TricklingServer:
    """Speaks plain SMTP until ``at``, then sends one byte every TRICKLE_EVERY seconds."""

    def __init__(self, at: str) -> None:
        self.at = at
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # a blocked accept() does not notice close()
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            conn.settimeout(None)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket, start: bytes, line: bytes) -> None:
        """``start``, then ``line`` over and over, a byte at a time, until TRICKLE_FOR is up."""
        conn.sendall(start)
        give_up = time.monotonic() + TRICKLE_FOR
        while True:
            for byte in line:
                if self._stop.is_set() or time.monotonic() > give_up:
                    return
                conn.sendall(bytes([byte]))
                time.sleep(TRICKLE_EVERY)

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            if self.at == "tls":
                self._trickle(conn, TLS_RECORD, b"\x00")
                return
            if self.at == "greeting":
                self._trickle(conn, b"", b"220-still waking up\r\n")
                return
            conn.sendall(b"220 trickle.example ESMTP\r\n")
            lines = conn.makefile("rb")
            for raw in lines:
                verb = raw[:4].upper()
                if verb == self.at.encode():
                    self._trickle(conn, b"", b"250-thinking about it\r\n")
                    return
                if verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                conn.sendall(b"250 ok\r\n" if verb != b"DATA" else b"354 go on\r\n")


@pytest.fixture
def org(sandbox: SandboxControl) -> SandboxControl:
    sandbox.reset(incidents=0, now=T0)
    add(sandbox, "Checkout latency", age=timedelta(hours=1))
    return sandbox


@pytest.mark.parametrize(
    ("at", "security"), [("greeting", "none"), ("RCPT", "none"), ("tls", "tls")]
)
def test_a_trickling_server_is_given_up_on_after_timeout_seconds(
    org: SandboxControl, tmp_path: Path, at: str, security: str
) -> None:
    """The whole send fails within about timeout_seconds; the digest stays queued for a retry."""
    server = TricklingServer(at)
    path = write_config(tmp_path, org.base_url, server.port)
    text = path.read_text().replace("timeout_seconds = 30", f"timeout_seconds = {TIMEOUT}")
    path.write_text(text.replace('security = "none"', f'security = "{security}"'))
    runtime, digests = open_digests(path, Clock(T0))
    try:
        digests.enqueue("daily", PERIOD)
        started = time.monotonic()
        [delivery] = digests.outbox.deliver_due()
        took = time.monotonic() - started
        item = runtime.ledger.outbox.find("daily", KEY)
    finally:
        runtime.close()
        server.close()

    assert took < TIMEOUT + MARGIN, f"the send took {took:.1f}s with timeout_seconds = {TIMEOUT}"
    assert delivery.outcome == OutboxState.PENDING
    assert item is not None
    assert item.state == OutboxState.PENDING
    assert item.next_attempt_at == T0 + timedelta(minutes=1)
    assert item.last_error is not None
    assert f"gave up after {TIMEOUT:g}s: smtp.timeout_seconds bounds the whole send" in (
        item.last_error
    )


@pytest.fixture
def no_leftover_threads() -> Iterator[None]:
    before = {t.ident for t in threading.enumerate()}
    yield
    time.sleep(0.05)
    left = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert not [t for t in left if isinstance(t, threading.Timer)], left


@pytest.mark.usefixtures("no_leftover_threads")
def test_a_prompt_server_leaves_no_deadline_timer_behind(
    org: SandboxControl, tmp_path: Path
) -> None:
    """Each send's deadline timer is cancelled when the send ends: no idle threads pile up."""
    from tests.digest_support import SMTPServer

    server = SMTPServer().start()
    runtime, digests = open_digests(write_config(tmp_path, org.base_url, server.port), Clock(T0))
    try:
        digests.enqueue("daily", PERIOD)
        [delivery] = digests.outbox.deliver_due()
    finally:
        runtime.close()
        server.stop()
    assert delivery.outcome == OutboxState.SENT
