"""A local webhook receiver that verifies each delivery and keeps it as a file, for the demo.

It is what a team's receiver should do: verify the Standard Webhooks signature
with the ``standardwebhooks`` library (refusing anything unsigned, forged or
stale with 401), de-duplicate on ``webhook-id`` (a retry of a delivery it
already has is answered 204 and not written again), and only then act. Each
accepted delivery becomes ``<webhook-id>.json`` in ``directory`` (the id is
the event key, made safe for a file name), holding the verified body.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_BODY = 256 * 1024
OnDelivery = Callable[[Path, dict[str, Any]], None]


class WebhookSink:
    """Start with ``start()``; ``url`` is known after that (port 0 picks a free one)."""

    def __init__(
        self,
        directory: Path,
        secret: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_delivery: OnDelivery | None = None,
    ) -> None:
        from standardwebhooks import Webhook

        self.directory = directory
        self.verifier = Webhook(secret)
        self.on_delivery = on_delivery
        self.received: list[dict[str, Any]] = []  # verified bodies, in arrival order
        self.refused = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-sink", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/incidents"

    def start(self) -> WebhookSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def accept(self, body: bytes, headers: dict[str, str]) -> int:
        """Verify, de-duplicate, keep: the HTTP status to answer."""
        from standardwebhooks import WebhookVerificationError

        try:
            payload = self.verifier.verify(body, headers)
        except WebhookVerificationError:
            with self._lock:
                self.refused += 1
            return 401
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", headers.get("webhook-id", "unknown"))[:150]
        path = self.directory / f"{name}.json"
        with self._lock:
            if path.exists():
                return 204  # a retry of a delivery already kept: acknowledge, do nothing
            self.directory.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
            self.received.append(payload)
        if self.on_delivery is not None:
            self.on_delivery(path, payload)
        return 204


def _handler(sink: WebhookSink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY:
                self.send_response(413)
                self.end_headers()
                return
            body = self.rfile.read(length)
            headers = {key.lower(): value for key, value in self.headers.items()}
            self.send_response(sink.accept(body, headers))
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the demo narrates deliveries itself."""

    return Handler
