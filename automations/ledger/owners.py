"""Who claimed an event or started a run, and whether that process may still be at work.

Each claim and each run records its owner: ``host:pid:token``, the token being
random per process, so a later process with the same PID (a restarted
container is PID 1 again) is told apart from the one that wrote the row.

A claim or run may be settled (reconciled, released, closed) by another process
only when its owner is **gone**: the row has no owner (written before owners
were recorded), or the owner ran on this host under our own PID (this process
or an earlier one with the same PID), or its PID no longer exists on this
host. An owner on another host cannot be checked; neither can a PID that was
reused. For those, ``LEASE`` bounds how long a claim can legitimately be in
flight: a claim older than that is settled too.
"""

from __future__ import annotations

import functools
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

# Longer than one action can take from claim to confirmation: the re-read and its updates
# (each call within the client's 120 s retry budget, plus its 30 s timeout) and one edit POST.
LEASE = timedelta(minutes=15)


@dataclass(frozen=True)
class Owner:
    """A process: the host it runs on, its PID, and a token unique to it."""

    host: str
    pid: int
    token: str

    def text(self) -> str:
        return f"{self.host}:{self.pid}:{self.token}"

    @classmethod
    def parse(cls, text: str | None) -> Owner | None:
        """The owner recorded in a row, or None when there is none (or it is unreadable)."""
        if not text:
            return None
        host, _, rest = text.rpartition(":")
        host, _, pid = host.rpartition(":")
        if not host or not pid.isdigit():
            return None
        return cls(host, int(pid), rest)

    def __str__(self) -> str:
        return f"PID {self.pid} on {self.host}"


@functools.cache
def _token(pid: int) -> str:
    """Random per process (keyed by PID, so a forked child gets its own)."""
    return secrets.token_hex(6)


def this_process() -> Owner:
    """The owner to record for whatever this process claims or starts."""
    pid = os.getpid()
    return Owner(socket.gethostname(), pid, _token(pid))


def pid_exists(pid: int) -> bool:
    """Whether a process with this PID exists on this host (signal 0 checks, sends nothing)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def is_gone(recorded: str | None) -> bool:
    """True when the process that wrote ``recorded`` has provably stopped (or is this one)."""
    owner = Owner.parse(recorded)
    if owner is None:
        return True
    me = this_process()
    if owner.host != me.host:
        return False  # cannot be checked from here
    return owner.pid == me.pid or not pid_exists(owner.pid)


def may_settle(recorded: str | None, since: datetime, now: datetime) -> bool:
    """Whether a claim (or run) by ``recorded`` at ``since`` may be settled by this process."""
    return is_gone(recorded) or now - since > LEASE


def lease_holder() -> str:
    """The owner a sender records on the outbox rows it leases: this process plus a token of
    its own, so two senders in one process (threads) are told apart too."""
    return f"{this_process().text()}.{secrets.token_hex(3)}"


def holder_gone(recorded: str | None) -> bool:
    """True when the sender that leased a row has provably stopped, so its lease need not run out.

    Unlike ``is_gone``, this process's own senders are alive (another thread may be
    sending); an earlier process with our PID (a restarted container) has another token.
    """
    owner = Owner.parse(recorded)
    if owner is None:
        return True
    me = this_process()
    if owner.host != me.host:
        return False  # cannot be checked from here: its lease decides
    if owner.pid == me.pid:
        return not owner.token.startswith(f"{me.token}.")
    return not pid_exists(owner.pid)
