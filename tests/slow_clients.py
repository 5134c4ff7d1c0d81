"""Slow clients of an HTTP port, in their own process: ``python -m tests.slow_clients``.

``count`` connections that never finish a request: the even ones send
nothing, the odd ones one byte of an endless request head per round. With
``reconnect``, whichever the server closes is opened again at the next round,
as slowloris does. Each round prints ``rounds opened established``.

A process of its own, so that neither the attacker's work nor the server's
(when it runs in the test process) delays the test's own requests behind
Python's GIL: a real attacker does not share an interpreter with the checker.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parent.parent
TRICKLE = b"GET /healthz HTTP/1.1\r\nHost: health\r\nX-Slow: " + b"a" * 4000


class Attack:
    """The attacker itself: call ``round()`` repeatedly."""

    def __init__(self, host: str, port: int, count: int, *, reconnect: bool) -> None:
        self.address = (host, port)
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.reconnect = reconnect
        self.socks: list[socket.socket | None] = [None] * count
        self.sent = [0] * count
        self.opened = 0
        self.rounds = 0

    def round(self) -> None:
        for i in range(len(self.socks)):
            self._visit(i)
        self.rounds += 1

    def established(self) -> int:
        count = 0
        for sock in self.socks:
            try:
                if sock is not None and sock.getpeername():
                    count += 1
            except OSError:
                pass
        return count

    def _visit(self, i: int) -> None:
        sock = self.socks[i]
        if sock is not None and not _alive(sock):
            sock.close()
            sock = self.socks[i] = None
        if sock is None:
            if self.rounds and not self.reconnect:
                return
            sock = socket.socket(self.family, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(self.address)  # non-blocking: EINPROGRESS
            self.socks[i], self.sent[i] = sock, 0
            self.opened += 1
        elif i % 2:  # the tricklers: one more byte of a head that never ends
            try:
                self.sent[i] += sock.send(TRICKLE[self.sent[i] % len(TRICKLE) :][:1])
            except OSError:
                sock.close()
                self.socks[i] = None


def _alive(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096, socket.MSG_DONTWAIT) != b""
    except (BlockingIOError, InterruptedError):
        return True  # connected (or connecting), nothing to read
    except OSError:
        return False  # reset, refused


class SlowClients:
    """``with SlowClients(host, port, 300) as attack:`` the attack runs in a child process."""

    def __init__(
        self,
        host: str,
        port: int,
        count: int,
        *,
        round_seconds: float = 0.5,
        reconnect: bool = True,
    ) -> None:
        command = [sys.executable, "-m", "tests.slow_clients", host, str(port), str(count)]
        command += ["--round", str(round_seconds)] + ([] if reconnect else ["--no-reconnect"])
        self.command = command
        self.rounds = self.opened = self.established = 0
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> SlowClients:
        self._process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True, cwd=REPO
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._process is not None
        self._process.kill()
        self._process.wait(timeout=10)
        if self._process.stdin is not None:
            self._process.stdin.close()
        assert self._reader is not None
        self._reader.join(timeout=5)  # the process is gone: its reader has met the end
        # Closing the pipe under a reader still blocked on it would wait for that read.
        if not self._reader.is_alive() and self._process.stdout is not None:
            self._process.stdout.close()

    def wait_rounds(self, n: int) -> None:
        """Until ``n`` more rounds have run."""
        target = self.rounds + n
        deadline = time.monotonic() + 30
        while self.rounds < target:
            assert self._process is not None
            assert self._process.poll() is None, "the attacker died"
            assert time.monotonic() < deadline, "the attack stalled"
            time.sleep(0.02)

    def _read(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.rounds, self.opened, self.established = map(int, line.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("--round", type=float, default=0.5, help="seconds between rounds")
    parser.add_argument("--no-reconnect", dest="reconnect", action="store_false")
    args = parser.parse_args()
    # The test that started us closes our stdin when it ends, even if it dies: so do we.
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    attack = Attack(args.host, args.port, args.count, reconnect=args.reconnect)
    while True:
        attack.round()
        print(attack.rounds, attack.opened, attack.established(), flush=True)
        time.sleep(args.round)


if __name__ == "__main__":
    main()
