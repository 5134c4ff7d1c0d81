"""Leader election on PostgreSQL: several replicas, one actor.

With ``[store] url`` several daemons may share one ledger. The one holding a
PostgreSQL *session* advisory lock is the leader: it alone runs rule cycles,
digests and the notification outbox. The others are standbys: every
``RETRY_EVERY`` seconds each tries the lock, and the first to get it once it
frees leads, running a cycle at once.

The lock is held on a connection of its own (not the ledger's), so it is freed
exactly when that session ends:

- the leader dies (kill -9, out of memory, its node gone): the kernel closes its
  TCP connection, the server ends the session and frees the lock;
- the server ends the session (``pg_terminate_backend``, a restart, a proxy):
  the lock is freed at once, and the leader's next check fails;
- the network hangs: the session asks the server for TCP keepalives (idle 5 s,
  then 3 probes 2 s apart), so the lock is freed about 11 s after the leader
  went silent. The leader's own questions are answered within ``ANSWER_WITHIN``
  (5 s) or its connection is cut (``tcp_user_timeout``, a statement timeout, and
  a watchdog for a middlebox that takes bytes and never answers), so it has
  stopped acting well before that, and never hangs on the lock.

Before each effect (an edit, a digest, a notification) the leader asks on that
connection whether the lock is still its own (``Leadership.may_act``): a failed
check raises NotLeader, which ends the work quietly, and the daemon becomes a
standby. Exactly once never rests on the lock alone: claims stay unique in the
ledger, so even two replicas acting during a split never apply one event twice.

The lock's key is derived from the database and schema, so ledgers sharing a
server never block each other.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from automations.errors import LeaderRunning, LedgerError, NotLeader
from automations.ledger.owners import Owner, this_process
from automations.store_url import redact, scrub

if TYPE_CHECKING:
    import psycopg

    from automations.config import Config

log = logging.getLogger(__name__)

Guard = Callable[[], None]  # raises NotLeader when this replica must not act

RETRY_EVERY = 2.0  # seconds between a standby's tries for the lock
CHECK_EVERY = 1.0  # seconds between the leader's checks while it has nothing to do
ANSWER_WITHIN = 5.0  # seconds a question on the lock's connection may take: then it is cut
LOCK_CLASS = 0x6175746F  # "auto": the first key of the two-key advisory lock
APP_PREFIX = "automations "  # application_name of the lock's connection: names the holder

# libpq settings of the lock's connection: a dead network is noticed within seconds.
CONNECTION = {
    "connect_timeout": "5",
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "5000",  # ms: a check unanswered this long fails
}
# The session's: the server drops a silent leader (and frees the lock) in about 11 s.
SESSION = {
    "statement_timeout": "5s",
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "5000",
}

_WHERE = "SELECT current_database(), coalesce(current_schema(), '')"  # the ledger's key
_HELD = """
    SELECT count(*) FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
      AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 2
"""
_HOLDER = """
    SELECT a.application_name, a.pid, host(a.client_addr) FROM pg_locks l
    JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid AND l.objsubid = 2
"""


def lock_key(database: str, schema: str) -> int:
    """The second key of the lock: one ledger (database and schema), one leader."""
    return zlib.crc32(f"{database}/{schema}".encode()) & 0x7FFFFFFF


def first_line(exc: BaseException, conninfo: str) -> str:
    """A driver error in one line, any password of ``conninfo`` hidden."""
    text = str(exc).strip().splitlines()
    return scrub(text[0], conninfo) if text else type(exc).__name__


def describe_holder(application_name: str, pid: int, address: str | None) -> str:
    """'PID 12 on host-a' from the holder's application_name; its server PID otherwise."""
    owner = None
    if application_name.startswith(APP_PREFIX):
        owner = Owner.parse(application_name.removeprefix(APP_PREFIX))
    if owner is not None:
        return str(owner)
    where = f" from {address}" if address else ""
    return f"a session (server PID {pid}{where})"


class Leadership:
    """The leader lock of one ledger, held on a connection of its own.

    Thread-safe: the daemon's main loop, its cycle, digest and notification jobs
    all ask through ``may_act``; one question at a time on the connection.
    """

    def __init__(self, conninfo: str, *, owner: Owner | None = None) -> None:
        self._conninfo = conninfo  # may carry the password: never logged
        self.owner = owner or this_process()
        self.leading = False
        self.lost_because: str | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._key: tuple[int, int] = (LOCK_CLASS, 0)
        self._lock = threading.Lock()

    # -- the connection -----------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        given = conninfo_to_dict(self._conninfo).get("options")
        options = " ".join(f"-c {name}={value}" for name, value in SESSION.items())
        conninfo = make_conninfo(
            self._conninfo,
            application_name=(APP_PREFIX + self.owner.text())[:63],
            options=f"{given} {options}" if given else options,
            **CONNECTION,
        )
        conn = psycopg.connect(conninfo, autocommit=True)
        try:
            row = answer(conn, _WHERE)
        except BaseException:
            conn.close()
            raise
        assert row is not None
        self._key = (LOCK_CLASS, lock_key(str(row[0]), str(row[1])))
        self._conn = conn
        return conn

    def _ask(self, sql: str) -> Any:
        """One question about the lock (its key as the parameters), on its connection."""
        conn = self._connection()
        return answer(conn, sql, self._key)  # the key is known once connected

    def _describe(self, exc: BaseException) -> str:
        return first_line(exc, self._conninfo)

    def _close(self) -> None:
        """Close the connection: the server ends the session, and with it any lock it held."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _lose(self, why: str) -> NotLeader:
        self.leading = False
        self.lost_because = why
        self._close()
        return NotLeader(why)

    # -- the lock -----------------------------------------------------------------------------

    def try_acquire(self) -> bool:
        """Take the lock if it is free; LedgerError when PostgreSQL cannot be reached."""
        import psycopg

        with self._lock:
            if self.leading:
                return True
            # A standby's idle connection may have been ended meanwhile: then one fresh try.
            for last in (self._conn is None, True):
                try:
                    row = self._ask("SELECT pg_try_advisory_lock(%s::int4, %s::int4)")
                    break
                except psycopg.Error as exc:
                    self._close()
                    if last:
                        raise LedgerError(
                            f"cannot open ledger {redact(self._conninfo)} for the leader lock: "
                            f"{self._describe(exc)}"
                        ) from exc
            self.leading = bool(row and row[0])
            if self.leading:
                self.lost_because = None
            return self.leading

    def may_act(self) -> None:
        """Raise NotLeader unless the lock is still held, asked on its connection now.

        The guard before each effect. A check that fails or does not answer in
        time gives the lock up (the connection is closed) before raising.
        """
        import psycopg

        with self._lock:
            if not self.leading or self._conn is None:
                raise NotLeader(self.lost_because or "this replica is a standby")
            try:
                row = self._ask(_HELD)
            except psycopg.Error as exc:
                raise self._lose(f"the lock's connection failed: {self._describe(exc)}") from None
            if not row or not row[0]:
                raise self._lose("the lock is no longer held by this replica's session")

    def holder(self) -> str | None:
        """Who holds the lock now, in words; None when no one does or it cannot be told."""
        import psycopg

        with self._lock:
            try:
                row = self._ask(_HOLDER)
            except psycopg.Error:
                self._close()
                return None
        if row is None:
            return None
        return describe_holder(str(row[0] or ""), int(row[1]), row[2])

    def release(self) -> None:
        """Give the lock up now and close (a stop: a standby takes over within seconds)."""
        import psycopg

        with self._lock:
            if self.leading and self._conn is not None:
                with contextlib.suppress(psycopg.Error):  # closing frees it just the same
                    self._ask("SELECT pg_advisory_unlock(%s::int4, %s::int4)")
            self.leading = False
            self.lost_because = "released"
            self._close()


def answer(conn: psycopg.Connection[Any], sql: str, params: tuple[int, ...] = ()) -> Any:
    """The first row of ``sql``; unanswered after ANSWER_WITHIN, the connection is cut, so
    the call fails instead of waiting on a middlebox that takes bytes and never answers."""
    watchdog = threading.Timer(ANSWER_WITHIN, cut, args=(conn,))
    watchdog.daemon = True
    watchdog.start()
    try:
        return conn.execute(sql, params).fetchone()
    finally:
        watchdog.cancel()


def cut(conn: psycopg.Connection[Any]) -> None:
    """Shut the connection's socket down: a read blocked on it fails at once. (Nothing to
    do if it closed meanwhile: this runs in the watchdog's thread, racing the answer.)"""
    with contextlib.suppress(Exception):
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()


def take_for_once(conninfo: str) -> Leadership:
    """``once`` on PostgreSQL: the leader lock if it is free, else LeaderRunning (exit 75)."""
    leadership = Leadership(conninfo)
    if leadership.try_acquire():
        return leadership
    holder = leadership.holder()
    leadership.release()
    raise LeaderRunning(holder)


def election_for(config: Config) -> Leadership | None:
    """``run``: this replica's part in the election on PostgreSQL; None on SQLite, whose file
    lock lets one daemon only."""
    from automations.store import config_location

    location = config_location(config)
    return Leadership(location) if isinstance(location, str) else None


@contextlib.contextmanager
def sole_actor(config: Config) -> Iterator[Guard | None]:
    """``once``: on PostgreSQL, the leader lock for the whole run (LeaderRunning, exit 75,
    while a daemon leads), released at the end; its guard is yielded. None on SQLite."""
    from automations.store import config_location

    location = config_location(config)
    if not isinstance(location, str):
        yield None
        return
    leadership = take_for_once(location)
    try:
        yield leadership.may_act
    finally:
        leadership.release()


def still_leading(may_act: Guard | None, what: str) -> bool:
    """Ask the guard before an effect of a delivery loop; False (logged) when it says no."""
    if may_act is None:
        return True
    try:
        may_act()
    except NotLeader as exc:
        log.info("%s: not sending, this replica is not the leader (%s)", what, exc)
        return False
    return True


class Election:
    """A daemon's part in the election: standby until it holds the lock.

    ``step`` is called from the daemon's main loop (every half second): a
    standby tries the lock every ``retry_every`` seconds, a leader checks it
    every ``check_every`` seconds (and before each effect, through
    ``Leadership.may_act``). Each change is one log line and one callback.
    """

    def __init__(
        self,
        leadership: Leadership,
        *,
        on_gain: Callable[[], None],
        on_loss: Callable[[str], None],
        on_standby: Callable[[str], None] | None = None,
        retry_every: float = RETRY_EVERY,
        check_every: float = CHECK_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.leadership = leadership
        self.on_gain, self.on_loss, self.on_standby = on_gain, on_loss, on_standby
        self.retry_every, self.check_every = retry_every, check_every
        self.clock = clock
        self.leader = False
        self.changes = 0
        self.leader_is: str | None = None  # what this standby last said about the leader
        self._next = 0.0
        self._unreachable: str | None = None

    def step(self) -> None:
        now = self.clock()
        if self.leader:
            if self.leadership.leading and now >= self._next:
                self._next = now + self.check_every
                with contextlib.suppress(NotLeader):
                    self.leadership.may_act()
            if not self.leadership.leading:  # this check, or a guard in a job, failed
                self._lost(self.leadership.lost_because or "the lock's connection was lost")
            return
        if now < self._next:
            return
        self._next = now + self.retry_every
        try:
            taken = self.leadership.try_acquire()
        except LedgerError as exc:
            self._standby(str(exc), failed=True)
            return
        if taken:
            self._gained()
        else:
            holder = self.leadership.holder() or "unknown (the lock just moved)"
            self._standby(f"leader is {holder}")

    def _gained(self) -> None:
        self.leader, self.leader_is = True, None
        self.changes += 1
        self._next = self.clock() + self.check_every
        log.info("became leader: this replica now runs the rules, digests and notifications")
        self.on_gain()

    def _lost(self, why: str) -> None:
        self.leader = False
        self.changes += 1
        self._next = self.clock() + self.retry_every
        log.warning("lost leadership: %s; acting on nothing, standing by", why)
        self.on_loss(why)

    def _standby(self, state: str, *, failed: bool = False) -> None:
        """One line each time what a standby sees changes (not every try); a warning when
        the lock could not be asked (``failed``), not when another replica holds it."""
        if state == self.leader_is:
            return
        self.leader_is = state
        level = logging.WARNING if failed else logging.INFO
        log.log(level, "standby: %s", state)
        if self.on_standby is not None:
            self.on_standby(state)

    def stop(self) -> None:
        """Release the lock (after the daemon's jobs have ended)."""
        self.leadership.release()
        self.leader = False


class Guarded(Protocol):
    """What asks the guard before its effects: the engine and both outboxes."""

    may_act: Guard | None


def lend_guard(guard: Guard | None, *parts: Guarded | None) -> None:
    """Make each part ask ``guard`` before each of its effects (a reload builds new parts)."""
    for part in parts:
        if part is not None:
            part.may_act = guard
