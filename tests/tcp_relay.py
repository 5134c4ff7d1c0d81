"""A TCP relay that can freeze: a middlebox that keeps taking bytes and never passes them on.

Frozen, it still accepts what either side sends (its kernel acknowledges it, so
TCP keepalives and retransmission timers see a live peer) but forwards nothing:
the hardest hang for a client to notice. ``close()`` then drops every connection.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress


class TcpRelay:
    """Listens on 127.0.0.1 (``port``) and relays each connection to ``target``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.frozen = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                while self.frozen.is_set() and not self._closed.is_set():
                    self._closed.wait(0.05)  # holds the bytes: nothing goes through
                if self._closed.is_set():
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def freeze(self) -> None:
        self.frozen.set()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for sock in self._sockets:  # shutdown first: it wakes a recv blocked on the socket
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@contextmanager
def tcp_relay(target: tuple[str, int]) -> Iterator[TcpRelay]:
    relay = TcpRelay(target)
    try:
        yield relay
    finally:
        relay.close()
