"""The optional listener: ``/healthz`` for Docker and orchestrators, ``/metrics`` for Prometheus.

Two read-only routes need no framework: the standard library's threading
HTTP server, in a daemon thread, keeps the daemon's start-up and memory small.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from automations.errors import ConfigError
from automations.metrics import Metrics

log = logging.getLogger("automations.server")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            verdict = self.server.metrics.health()
            body = json.dumps({"ok": verdict.ok, "reason": verdict.reason}).encode()
            self._send(200 if verdict.ok else 503, "application/json", body)
        elif path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, generate_latest(self.server.metrics.registry))
        else:
            self._send(404, "text/plain", b"not found: try /healthz or /metrics\n")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would drown the one line per cycle."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A scraper that hung up mid-answer: one debug line, not a traceback on stderr."""
        log.debug("health server: a request from %s failed", client_address, exc_info=True)

    def __init__(self, address: tuple[str, int], metrics: Metrics) -> None:
        self.metrics = metrics
        super().__init__(address, _Handler)


class HealthServer:
    """Serve in a background thread; ``port`` 0 picks a free port (tests)."""

    def __init__(self, metrics: Metrics, *, host: str, port: int) -> None:
        try:
            self._server = _Server((host, port), metrics)
        except OSError as exc:
            raise ConfigError(f"server: cannot listen on {host}:{port}: {exc.strerror}") from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="automations-health", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("health and metrics on %s/healthz and %s/metrics", self.url, self.url)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
