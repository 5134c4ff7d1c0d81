"""A local SMTP server that keeps every message as files, for the demo.

Each message becomes ``<stamp>-<n>.eml`` (the raw bytes, openable in any mail
client) and, when it has an HTML part, ``<stamp>-<n>.html`` to open in a
browser. aiosmtpd is the maintained asyncio SMTP server; it runs in its own
thread, so the daemon talks to it over real SMTP on 127.0.0.1.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

OnMessage = Callable[[Path, EmailMessage], None]


class _FileHandler:
    """aiosmtpd handler: write, then tell the listener (the demo's narrative)."""

    def __init__(self, directory: Path, on_message: OnMessage | None) -> None:
        self.directory = directory
        self.on_message = on_message
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = bytes(envelope.original_content or envelope.content)
        with self._lock:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            base = self.directory / f"{stamp}-{next(self._numbers)}"
        self.directory.mkdir(parents=True, exist_ok=True)
        base.with_suffix(".eml").write_bytes(raw)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        html = message.get_body(preferencelist=("html",))
        if html is not None:
            base.with_suffix(".html").write_text(html.get_content(), encoding="utf-8")
        if self.on_message is not None:
            self.on_message(base.with_suffix(".eml"), message)
        return "250 Message accepted for delivery"


class SMTPSink:
    """Start with ``start()``; ``port`` is known after that (0 picks a free one)."""

    def __init__(
        self,
        directory: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_message: OnMessage | None = None,
    ) -> None:
        from aiosmtpd.controller import Controller

        self.handler = _FileHandler(directory, on_message)
        self._controller = Controller(self.handler, hostname=host, port=port or _free_port(host))
        self.host = host

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def start(self) -> SMTPSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
