"""A small reverse proxy in front of the sandbox that rewrites API answers on the way back.

For what the sandbox never sends but a real (or hostile) API might: an embedded
severity without a rank, or with a wrong one, or a severity the catalog does not
have. The daemon talks HTTP to the proxy exactly as to the API; the proxy
forwards each request to the sandbox and passes each JSON answer through
``rewrite(path, body)`` before returning it with the sandbox's status and headers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

Rewrite = Callable[[str, Any], Any]
HOP_BY_HOP = {"connection", "transfer-encoding", "content-length", "content-encoding"}


class RewritingProxy:
    """Serves on 127.0.0.1 (a free port) until ``stop``; ``rewrite`` may be replaced any time."""

    def __init__(self, upstream: str, rewrite: Rewrite | None = None) -> None:
        self.upstream = upstream
        self.rewrite: Rewrite = rewrite or (lambda _path, body: body)
        self._http = httpx.Client(base_url=upstream, timeout=30)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                answer = proxy._http.request(self.command, self.path, content=body, headers=headers)
                content = answer.content
                if answer.headers.get("content-type", "").startswith("application/json"):
                    path = self.path.split("?", 1)[0]
                    content = json.dumps(proxy.rewrite(path, answer.json())).encode()
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PATCH = do_DELETE = _forward

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the sandbox keeps the request log."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> RewritingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()


def incidents_in(body: Any) -> Iterator[dict[str, Any]]:
    """The incident objects of a list page, a single incident or an edit answer."""
    if not isinstance(body, dict):
        return
    if isinstance(body.get("incidents"), list):
        yield from body["incidents"]
    if isinstance(body.get("incident"), dict):
        yield body["incident"]
