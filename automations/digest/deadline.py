"""One deadline over a whole SMTP conversation, not per socket operation.

smtplib's ``timeout`` bounds each socket call, so a server that answers one
byte per second never trips it and a send lasts as long as the server likes
(97 s with a 5 s timeout). Here a timer shuts the connection down once
``seconds`` have passed since the send began, whatever it is doing:
connecting, the TLS handshake, waiting for a reply or writing the DATA. The
blocked call then fails, and the caller sees ``Deadline.passed``.

The timer shuts down its own duplicate of the TCP socket, taken before any
TLS wrapping, so it reaches the connection in every phase and never touches a
descriptor that was closed and reused.

Imported only when a digest is sent (smtplib and ssl load lazily).
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
import threading
import time
from typing import Any

from automations.closing import Closing


class Deadline(Closing):
    """``seconds`` from now, for one send: shuts its connection down then, from a timer."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds
        self.fired = False
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None  # our duplicate of the connection
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    @property
    def passed(self) -> bool:
        """The time is up: the timer fired, or a socket timeout (never longer) beat it to it."""
        return self.fired or time.monotonic() >= self.ends

    def remaining(self) -> float:
        return max(0.001, self.ends - time.monotonic())

    def watch(self, sock: socket.socket) -> socket.socket:
        """Watch this TCP socket (before TLS); refuse it if the deadline already passed."""
        with self._lock:
            if self.fired:
                sock.close()
                raise TimeoutError(f"no time left of the {self.seconds:g}s for the whole send")
            if self._socket is not None:
                self._socket.close()
            self._socket = sock.dup()
        return sock

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            if self._socket is not None:
                with contextlib.suppress(OSError):  # already closed by the peer
                    self._socket.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv or send

    def close(self) -> None:
        """The send is over: no timer, no duplicate socket."""
        self._timer.cancel()
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None


class BoundedSMTP(smtplib.SMTP):
    """smtplib.SMTP whose whole conversation, from connect to QUIT, ends at ``deadline``."""

    def __init__(self, host: str, port: int, *, deadline: Deadline, **kwargs: Any) -> None:
        self._deadline = deadline
        self._server_hostname = host
        super().__init__(host, port, timeout=deadline.seconds, **kwargs)

    # _get_socket is smtplib's own hook for how to connect (SMTP_SSL and LMTP override it
    # too); typeshed leaves it out, being private.
    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        limit = min(timeout, self._deadline.remaining())
        sock: socket.socket = super()._get_socket(host, port, limit)  # type: ignore[misc]
        return self._deadline.watch(sock)


class BoundedSMTPSSL(BoundedSMTP, smtplib.SMTP_SSL):
    """Implicit TLS (port 465) under the same deadline, the handshake included."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # The TCP socket is watched before the handshake, so a trickled handshake is bounded.
        limit = min(timeout, self._deadline.remaining())
        raw: socket.socket = smtplib.SMTP._get_socket(self, host, port, limit)  # type: ignore[attr-defined]
        self._deadline.watch(raw)
        context: ssl.SSLContext = self.context
        return context.wrap_socket(raw, server_hostname=self._server_hostname)
