"""A reverse proxy in front of the sandbox that can turn any answer hostile.

The sandbox is a faithful incident.io; what a broken proxy, a misconfigured
gateway or a hostile server in between does is not its job. This proxy
forwards every request to the sandbox over real HTTP and lets a test
replace the answer (``answer``: before forwarding) or change it (``rewrite``:
after), e.g. echo the Authorization header it received, hand out a fresh
cursor forever, corrupt one incident or send a Date from another year.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from tests.sandbox_server import SandboxControl

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Exchange:
    """One request as the proxy received it."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json_body(self) -> Any:
        return json.loads(self.body)

    def with_json(self, body: Any) -> Answer:
        return Answer(self.status, self.headers, json.dumps(body).encode())


@dataclass
class HostileProxy:
    """``answer(exchange)`` may answer instead of the sandbox; ``rewrite`` may change its answer."""

    upstream: str
    answer: Callable[[Exchange], Answer | None] | None = None
    rewrite: Callable[[Exchange, Answer], Answer] | None = None
    seen: list[Exchange] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _upstream: httpx.Client | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def forward(self, exchange: Exchange, **params: str | None) -> Answer:
        """The sandbox's answer to ``exchange``, with query parameters replaced (None: dropped)."""
        assert self._upstream is not None
        query: list[tuple[str, str | int | float | bool | None]] = [
            (k, v) for k, v in exchange.query if k not in params
        ]
        query += [(k, v) for k, v in params.items() if v is not None]
        forwarded = self._upstream.request(
            exchange.method,
            exchange.path,
            params=query,
            headers={k: v for k, v in exchange.headers.items() if k not in HOP_BY_HOP},
            content=exchange.body,
        )
        headers = {
            k.lower(): v
            for k, v in forwarded.headers.items()
            if k.lower() not in HOP_BY_HOP | {"content-encoding"}
        }
        return Answer(forwarded.status_code, headers, forwarded.content)

    def start(self) -> HostileProxy:
        proxy = self
        self._upstream = httpx.Client(base_url=self.upstream, timeout=30)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                exchange = Exchange(
                    method=self.command,
                    path=parts.path,
                    query=parse_qsl(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                proxy.seen.append(exchange)
                answer = proxy.answer(exchange) if proxy.answer else None
                if answer is None:
                    answer = proxy.forward(exchange)
                    if proxy.rewrite is not None:
                        answer = proxy.rewrite(exchange, answer)
                # send_response_only: no Date or Server of our own, the sandbox's Date stays
                self.send_response_only(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = _handle

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._upstream is not None:
            self._upstream.close()

    def requests_to(self, method: str, path: str) -> list[Exchange]:
        return [e for e in self.seen if e.method == method and e.path == path]


@pytest.fixture
def hostile(sandbox: SandboxControl) -> Iterator[HostileProxy]:
    """A proxy to the session's sandbox that forwards everything until a test says otherwise."""
    proxy = HostileProxy(sandbox.base_url).start()
    try:
        yield proxy
    finally:
        proxy.stop()
