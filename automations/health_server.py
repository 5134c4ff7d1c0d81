"""The optional listener: ``/healthz`` for Docker and orchestrators, ``/metrics`` for Prometheus.

Built to keep answering while its port is abused (slowloris and the like):

- one asyncio loop in a daemon thread, no thread per connection;
- on Linux, TCP_DEFER_ACCEPT: a connection reaches us only once it has sent
  something (or after DEFER_ACCEPT seconds), so silent clients wait in the
  kernel and cost us no descriptor;
- at most ``max_connections`` open at once (64, or a quarter of the process's
  descriptor limit if lower); when full, the connection that has waited
  longest for a request head is closed to make room, but never one younger
  than ``GRACE``, and the next ones wait in the kernel's queue meanwhile;
- each request head must arrive, and its answer leave, within
  ``request_timeout`` (idle keep-alive connections included).

So a health check, which sends its request at once, is answered within about
a second even while 300 slow clients keep reconnecting
(tests/test_health_slow_clients.py).

With ``[webhooks] enabled`` it also takes incident.io's deliveries: ``POST``
to the webhook path. The body is read only up to ``max_body_bytes`` (413, and
the connection closed once the client has sent the rest or timed out, when a
declared length or the bytes sent exceed it), within the same
``request_timeout``; the receiver (automations/webhooks/receiver.py) then runs
in a worker thread, so verifying and recording never stall the loop.

With digests, ``GET /digests/<name>/changes`` is a digest's page of every automated
change in a window (automations/digest/changes_page.py), also answered in a worker
thread: it reads the ledger.

HTTP is parsed by h11 (the parser under httpx and uvicorn). uvicorn itself
does not fit: it neither caps connections nor times out a request head, so
300 silent clients cost it 300 descriptors. ``host`` may be IPv4 or IPv6;
``::`` listens on both where the kernel allows dual stack.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from http import HTTPStatus
from typing import TYPE_CHECKING

import h11
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from automations.errors import ConfigError
from automations.metrics import Metrics

if TYPE_CHECKING:
    from automations.digest.changes_page import ChangesPages
    from automations.webhooks.receiver import WebhookReceiver

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64  # a health checker, a scraper or two, probes: plenty, and few descriptors
REQUEST_TIMEOUT = 5.0  # seconds for a request head to arrive and its answer to leave
GRACE = 0.1  # seconds a new connection is safe from eviction: time enough to read its request
DEFER_ACCEPT = 5  # seconds the kernel holds a connection that has sent nothing (Linux)
BACKLOG = 1024  # connections the kernel queues for us (they hold no descriptor of ours)
MAX_HEAD_BYTES = 8192  # a longer request line and headers get 431

Answer = tuple[int, str, bytes]  # status, content type, body


def answer(metrics: Metrics, method: bytes, target: bytes) -> Answer:
    """(status, content type, body) for one request; HEAD is answered like GET, without body."""
    if method not in (b"GET", b"HEAD"):
        return 405, "text/plain", b"method not allowed: GET or HEAD\n"
    path = target.split(b"?", 1)[0]
    if path == b"/healthz":
        verdict = metrics.health()
        body = json.dumps(
            {"ok": verdict.ok, "reason": verdict.reason, "role": metrics.role}
        ).encode()
        return (200 if verdict.ok else 503), "application/json", body
    if path == b"/metrics":
        return 200, CONTENT_TYPE_LATEST, generate_latest(metrics.registry)
    return 404, "text/plain", b"not found: try /healthz or /metrics\n"


class _Connection(asyncio.Protocol):
    """One client: h11 parses, each request is answered as soon as its head is in."""

    def __init__(self, server: HealthServer) -> None:
        self.server = server
        self.http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.transport: asyncio.Transport | None = None
        self.waiting = True  # for a request head: evictable
        self.since = 0.0  # loop time it started waiting
        self.answered = 0
        self.heard = False  # anything received since the current wait began
        self._deadline: asyncio.TimerHandle | None = None
        # A webhook delivery: its request while the body comes in, the body so far.
        self.delivery: h11.Request | None = None
        self.body = bytearray()
        self.answering = False  # the receiver is at work on a delivery
        self.close_when_answered = False  # the client half-closed meanwhile
        self.discarding = False  # 413 sent: the rest of the body is read and dropped

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._start_cycle()

    def data_received(self, data: bytes) -> None:
        self.heard = True
        self.http.receive_data(data)
        self._handle()

    def eof_received(self) -> bool:
        if self.answering:  # the client may still read: answer, then close
            self.close_when_answered = True
            return True
        self.http.receive_data(b"")
        self._handle()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self.server.forget(self)
        self.transport = None

    # -- the request cycle --------------------------------------------------------------

    def _start_cycle(self) -> None:
        """A new request may come: the clock starts, and the connection may be evicted."""
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = asyncio.get_running_loop().call_later(
            self.server.request_timeout, self._expire
        )
        self.waiting, self.heard = True, False
        self.since = asyncio.get_running_loop().time()
        self.server.waiting(self)

    def _expire(self) -> None:
        if not (self.answered and not self.heard):  # an idle keep-alive closing is routine
            self.server.dropped("timeout")
        self.drop()

    def drop(self) -> None:
        """Close now, without a word (a slow or surplus client).

        With a FIN when all we wrote has left: a reset could destroy an answer the
        client has not read yet. A reset when it has not: a client that does not
        read must not hold the descriptor.
        """
        if self.transport is not None:
            if self.transport.get_write_buffer_size():
                self.transport.abort()
            else:
                self.transport.close()

    def _handle(self) -> None:
        try:
            while self.transport is not None and not self.transport.is_closing():
                event = self.http.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return
                if isinstance(event, h11.Request):
                    self.waiting = False
                    if self._for_webhook(event):
                        self._begin_delivery(event)
                    elif self._for_page(event):
                        self._begin_page(event)
                        return  # the answer comes from a worker thread
                    else:
                        self._respond(*self._answer(event), event)
                elif self.delivery is not None and isinstance(event, h11.Data):
                    self._take_body(event.data)
                elif self.delivery is not None and isinstance(event, h11.EndOfMessage):
                    self._deliver()
                    return  # the answer comes from the receiver's thread
                elif isinstance(event, h11.ConnectionClosed):
                    self.transport.close()
                # h11.Data (a body nobody asked for) and EndOfMessage need nothing
                self._settle()
        except h11.RemoteProtocolError as exc:
            self._refuse(exc.error_status_hint)

    def _settle(self) -> None:
        """After an event: close if we must, or start the next request cycle once both are done."""
        if self.transport is None or self.transport.is_closing():
            return
        if self.http.our_state is h11.MUST_CLOSE:
            # After a 413, the client is still sending: let it finish (within the request
            # timeout) so it reads the answer; a close now could reset it unread.
            if not (self.discarding and self.http.their_state is h11.SEND_BODY):
                self.transport.close()
        elif self.http.our_state is h11.DONE and self.http.their_state is h11.DONE:
            self.http.start_next_cycle()
            self._start_cycle()

    # -- webhook deliveries ---------------------------------------------------------------

    def _for_webhook(self, request: h11.Request) -> bool:
        webhook = self.server.webhook
        return webhook is not None and request.target.split(b"?", 1)[0] == webhook.path

    def _begin_delivery(self, request: h11.Request) -> None:
        """Answer at once what needs no body (405, 413 by declared length); else read it."""
        webhook = self.server.webhook
        assert webhook is not None
        if _head_size(request) > MAX_HEAD_BYTES:
            self._respond(431, "text/plain", b"request header fields too large\n", request)
        elif request.method != b"POST":
            body = b"method not allowed: POST\n"
            self._respond(405, "text/plain", body, request, allow="POST")
        elif (_content_length(request) or 0) > webhook.max_body_bytes:
            self._too_large(request)
        else:
            self.delivery, self.body = request, bytearray()
            if self.http.they_are_waiting_for_100_continue and self.transport is not None:
                continued = h11.InformationalResponse(status_code=100, headers=[])
                self.transport.write(self.http.send(continued) or b"")

    def _take_body(self, data: bytes) -> None:
        webhook, request = self.server.webhook, self.delivery
        assert webhook is not None
        assert request is not None
        if self.discarding:
            return
        self.body += data
        if len(self.body) > webhook.max_body_bytes:
            self._too_large(request)

    def _too_large(self, request: h11.Request) -> None:
        webhook = self.server.webhook
        assert webhook is not None
        self.delivery, self.body, self.discarding = request, bytearray(), True
        self._respond(*webhook.too_large(), request, close=True)

    def _deliver(self) -> None:
        """The body is in: verify and record it in a worker thread, answer when done."""
        request, body = self.delivery, bytes(self.body)
        self.delivery, self.body = None, bytearray()
        webhook = self.server.webhook
        assert request is not None
        assert webhook is not None
        if self.discarding:  # answered (413) already
            self._settle()
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in request.headers
        }
        self.answering = True
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, webhook.receive, headers, body)
        future.add_done_callback(lambda done: self._delivered(done, request))

    def _for_page(self, request: h11.Request) -> bool:
        pages = self.server.pages
        return pages is not None and pages.wants(request.target)

    def _begin_page(self, request: h11.Request) -> None:
        """A page reads the ledger: in a worker thread, answered like a webhook delivery."""
        pages = self.server.pages
        assert pages is not None
        if _head_size(request) > MAX_HEAD_BYTES:
            self._respond(431, "text/plain", b"request header fields too large\n", request)
            self._settle()
            return
        self.answering = True
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, pages.answer, request.method, request.target)
        future.add_done_callback(lambda done: self._delivered(done, request))

    def _delivered(self, done: asyncio.Future[Answer], request: h11.Request) -> None:
        self.answering = False
        if self.transport is None or self.transport.is_closing():
            return  # timed out or dropped meanwhile: the sender retries (a duplicate, if recorded)
        try:
            answer = done.result()
        except Exception:
            log.exception("webhook receiver failed")
            answer = 500, "text/plain", b"internal error: see the daemon's log\n"
        self._respond(*answer, request, close=self.close_when_answered)
        self._settle()
        self._handle()  # a request pipelined behind this one

    def _answer(self, request: h11.Request) -> Answer:
        if _head_size(request) > MAX_HEAD_BYTES:  # h11 checks only a head still arriving
            return 431, "text/plain", b"request header fields too large\n"
        try:
            return answer(self.server.metrics, request.method, request.target)
        except Exception:  # a bug, or a collector that broke: a 500, and the server goes on
            log.exception("health server: answering %r failed", request.target)
            return 500, "text/plain", b"internal error: see the daemon's log\n"

    def _respond(
        self,
        status: int,
        content_type: str,
        body: bytes,
        request: h11.Request,
        *,
        allow: str = "GET, HEAD",
        close: bool = False,
    ) -> None:
        assert self.transport is not None
        headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ]
        if status == 405:
            headers.append(("Allow", allow))
        if close:
            headers.append(("Connection", "close"))
        reason = HTTPStatus(status).phrase.encode()
        out = self.http.send(h11.Response(status_code=status, headers=headers, reason=reason))
        if request.method != b"HEAD":
            out = (out or b"") + (self.http.send(h11.Data(data=body)) or b"")
        out = (out or b"") + (self.http.send(h11.EndOfMessage()) or b"")
        self.transport.write(out)
        self.answered += 1

    def _refuse(self, status: int) -> None:
        """A malformed or oversized request: say so if we still may, then close."""
        assert self.transport is not None
        if self.http.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            body = b"bad request\n"
            try:
                response = h11.Response(
                    status_code=status,
                    reason=HTTPStatus(status).phrase.encode(),
                    headers=[("Content-Length", str(len(body))), ("Connection", "close")],
                )
                self.transport.write(
                    b"".join(
                        self.http.send(event) or b""
                        for event in (response, h11.Data(data=body), h11.EndOfMessage())
                    )
                )
            except h11.LocalProtocolError:
                pass
        self.transport.close()


class HealthServer:
    """Serve in a background thread; ``port`` 0 picks a free port (tests)."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        host: str,
        port: int,
        max_connections: int | None = None,
        request_timeout: float = REQUEST_TIMEOUT,
        grace: float = GRACE,
        webhook: WebhookReceiver | None = None,
        pages: ChangesPages | None = None,
    ) -> None:
        self.metrics = metrics
        self.webhook = webhook  # [webhooks]: POST to its path
        self.pages = pages  # digests' pages of changes
        self.max_connections = max_connections or default_max_connections()
        self.request_timeout = request_timeout
        self.grace = grace
        self._socket = _listen(host, port)
        bound = self._socket.getsockname()
        self.address: tuple[str, int] = (str(bound[0]), int(bound[1]))
        # Insertion order is "waiting since": the first waiting one is the one to evict.
        self._connections: dict[_Connection, None] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="automations-health", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def start(self) -> HealthServer:
        self._thread.start()
        self._ready.wait(timeout=10)
        log.info("health and metrics on %s/healthz and %s/metrics", self.url, self.url)
        if self.webhook is not None:
            log.info("incident.io webhooks on %s%s", self.url, self.webhook.path.decode())
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=10)
        self._socket.close()

    # -- the loop's thread ----------------------------------------------------------------

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        accepting = asyncio.create_task(self._accept())
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            accepting.cancel()
            for connection in list(self._connections):
                connection.drop()

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._make_room()
            try:
                client, _ = await loop.sock_accept(self._socket)
            except OSError as exc:  # EMFILE and the like: the process is short of descriptors
                log.warning("health server: cannot accept a connection: %s", exc.strerror)
                await asyncio.sleep(0.5)
                continue
            try:
                await loop.connect_accepted_socket(lambda: _Connection(self), client)
            except OSError:
                client.close()
            except Exception:  # never let one connection stop the server
                log.exception("health server: a connection could not be set up")
                client.close()

    async def _make_room(self) -> None:
        """Below the cap, or once the longest-waiting connection is past its grace: close it."""
        loop = asyncio.get_running_loop()
        while len(self._connections) >= self.max_connections:
            victim = next((c for c in self._connections if c.waiting), None)
            victim = victim or next(iter(self._connections))
            young = victim.since + self.grace - loop.time()
            if young > 0:
                await asyncio.sleep(young)  # newcomers wait in the kernel's queue meanwhile
                continue
            del self._connections[victim]
            self.dropped("evicted")
            victim.drop()

    # -- called by connections, on the loop's thread ---------------------------------------

    def waiting(self, connection: _Connection) -> None:
        """``connection`` now waits for a request head: it goes to the back of the queue."""
        self._connections.pop(connection, None)
        self._connections[connection] = None

    def forget(self, connection: _Connection) -> None:
        self._connections.pop(connection, None)

    def dropped(self, reason: str) -> None:
        self.metrics.http_dropped.labels(reason).inc()


def _head_size(request: h11.Request) -> int:
    """The request line's target and headers, roughly as sent (h11 limits only partial heads)."""
    return len(request.target) + sum(len(k) + len(v) + 4 for k, v in request.headers)


def _content_length(request: h11.Request) -> int | None:
    for name, value in request.headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:  # h11 has checked it already; be safe anyway
                return None
    return None


def default_max_connections() -> int:
    """MAX_CONNECTIONS, but never more than a quarter of the descriptors the process may open:
    the rest are the daemon's (API connections, the ledger, SMTP)."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError):  # not on POSIX
        return MAX_CONNECTIONS
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(4, min(MAX_CONNECTIONS, soft // 4))


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host`` (IPv4, IPv6, or a name: its first address)."""
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        both = family == socket.AF_INET6 and address[0] == "::" and socket.has_dualstack_ipv6()
        sock = socket.create_server(address, family=family, backlog=BACKLOG, dualstack_ipv6=both)
    except OSError as exc:  # socket.gaierror included: an unknown name
        reason = exc.strerror or str(exc)
        raise ConfigError(f"server: cannot listen on {host}:{port}: {reason}") from None
    if hasattr(socket, "TCP_DEFER_ACCEPT"):  # Linux: silent connections never reach accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, DEFER_ACCEPT)
    sock.setblocking(False)
    return sock
