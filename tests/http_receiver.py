"""A real HTTP server on 127.0.0.1 that keeps every request and answers as a test says.

Receives what the webhook and apprise (``json://``) channels send, over a real socket;
``statuses`` queues the answers (200 once they run out), and ``verify_with`` checks each
request's Standard Webhooks signature with the ``standardwebhooks`` library, as a
receiver would.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Received:
    """One request as the server got it, and what a verifying receiver made of it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    status: int  # what the server answered
    verified: Any = None  # the payload standardwebhooks returned, if it verified
    verify_error: str | None = None
    at: float = field(default_factory=time.monotonic)  # when it arrived

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """The server's state: answers to give, requests received."""

    statuses: list[int] = field(default_factory=list)
    verify_with: str | None = None  # a whsec_ secret: verify every request
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else 200

    def keep(self, request: Received) -> None:
        with self.lock:
            self.received.append(request)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = receiver.answer()
            request = Received("POST", self.path, headers, body, status)
            if receiver.verify_with is not None:
                from standardwebhooks import Webhook

                try:
                    request.verified = Webhook(receiver.verify_with).verify(body, headers)
                except Exception as exc:  # the verdict is what the test asserts on
                    request.verify_error = f"{type(exc).__name__}: {exc}"
            receiver.keep(request)
            self.send_response(status)
            self.send_header("content-type", "application/json")
            if 300 <= status < 400:
                self.send_header("location", "/elsewhere")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: pytest shows what matters

    return Handler


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    """A receiver serving on a free loopback port until the block ends (tests, benchmarks)."""
    state = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running receiver on a free loopback port."""
    with running_receiver() as state:
        yield state
