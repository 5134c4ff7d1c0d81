"""A reverse proxy to the sandbox that can answer in its place: the API on a bad day.

Everything is passed through until ``answer_with`` arms it; then every API
request (``/v1/...``, ``/v2/...``) gets that status and JSON body instead,
e.g. an error envelope whose message carries text the product must not repeat.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _relay(self) -> None:
        proxy = self.server.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        canned = proxy.canned
        if canned is not None and self.path.startswith(("/v1/", "/v2/")):
            status, payload = canned
            self._send(status, {"Content-Type": "application/json"}, json.dumps(payload).encode())
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = proxy.client.request(self.command, self.path, headers=headers, content=body)
        kept = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        kept.pop("content-encoding", None)  # httpx has decoded the body
        self._send(upstream.status_code, kept, upstream.content)

    do_GET = do_POST = do_PATCH = do_DELETE = _relay

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the sandbox keeps the request log."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: UpstreamProxy) -> None:
        self.proxy = proxy
        super().__init__(("127.0.0.1", 0), _Handler)


class UpstreamProxy:
    """``with UpstreamProxy(sandbox.base_url) as proxy:`` point the config at ``proxy.base_url``."""

    def __init__(self, target: str) -> None:
        self.client = httpx.Client(base_url=target, timeout=30)
        self.canned: tuple[int, dict[str, Any]] | None = None
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer_with(self, status: int, body: dict[str, Any]) -> None:
        """From now on, every API request gets this answer."""
        self.canned = (status, body)

    def __enter__(self) -> UpstreamProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.client.close()
