"""At start-up a silent SMTP server holds back no rule: the outbox's first run (the missed
digest, the queued ones) is a scheduler job beside the first rule cycle, not before it."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta

from automations.clock import host_now
from tests.daemon_process import DaemonProcess
from tests.digest_support import in_use_since, write_config
from tests.engine_harness import Harness
from tests.test_engine_sandbox import ESCALATE

SMTP_TIMEOUT = 20  # seconds: far longer than a start-up may take


class SilentSMTP:
    """Accepts connections and never says hello, as a hung mail server does."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        try:
            while True:
                self.connections.append(self._listener.accept()[0])
        except OSError:  # closed
            return

    def close(self) -> None:
        """Hang up on every client: a send waiting for the greeting fails at once."""
        self._listener.close()
        for connection in self.connections:
            connection.close()


def test_a_silent_smtp_server_does_not_hold_back_the_first_rule_cycle(harness: Harness) -> None:
    """With a digest due and SMTP silent, the first escalation comes within seconds of start."""
    smtp = SilentSMTP()
    try:
        path = write_config(
            harness.tmp_path, harness.sandbox.base_url, smtp.port,
            cron="* * * * *", timezone="UTC", extra='catch_up_grace = "5m"\n', more=ESCALATE,
        )  # fmt: skip
        path.write_text(
            path.read_text().replace("timeout_seconds = 30", f"timeout_seconds = {SMTP_TIMEOUT}")
        )
        # In use since yesterday: the minute just past is a digest to send at start-up.
        in_use_since(harness.ledger_path, "daily", host_now() - timedelta(days=1))
        stuck = harness.add("Stuck", age=timedelta(hours=3))
        daemon = DaemonProcess(harness)
        try:
            daemon.wait_for(lambda: bool(smtp.connections), "an SMTP connection", timeout=15)
            daemon.wait_for(
                lambda: harness.severity(stuck["id"]) == "Major",
                "the first escalation",
                timeout=SMTP_TIMEOUT / 2,
            )
            first_cycle = time.monotonic() - daemon.started
            assert smtp.connections, "the digest is still waiting for the SMTP greeting"
            smtp.close()
            daemon.wait_for_line("attempt 1 failed", timeout=5)  # the hung send fails now
            code = daemon.stop()
        finally:
            daemon.kill()
    finally:
        smtp.close()

    assert code == 0, daemon.log
    assert first_cycle < SMTP_TIMEOUT / 2, daemon.log
    assert "Traceback" not in daemon.log
