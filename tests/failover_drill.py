"""The failover drill: three daemons on one PostgreSQL ledger and the sandbox, the leader
killed (kill -9) or its lock session ended (``pg_terminate_backend``), again and again.

Each round adds incidents that are due at once, waits until the leader has sent
the first of their edits (so it is at work on the rest), then takes the leader
down and times the takeover: from the kill to a replica's "became leader" line.
A killed replica is replaced, so three run throughout. At the end every incident
must have been edited exactly once and notified (the webhook receiver's
deliveries, by ``webhook-id``), and exactly one replica leads.

A delivery the receiver got twice is a *repeat*: it is put down to the takedown
that came next after the first copy arrived. After kill -9 one repeat is the
notification outbox's documented window (automations/notify/outbox.py: the
receiver had it, the dead process had not recorded it; same ``webhook-id``, so
the receiver folds it); after pg_terminate_backend there must be none.

Shared by tests/test_failover.py (a few rounds, in ``make test``) and
bench/failover.py (more rounds: failover p50/p95 in docs/benchmarks.md).
"""

from __future__ import annotations

import base64
import os
import re
import signal
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import httpx

from automations.leadership import APP_PREFIX
from automations.ledger.owners import Owner
from tests.daemon_process import DaemonProcess
from tests.engine_harness import Harness
from tests.http_receiver import Receiver
from tests.leader_support import terminate_sessions

SECRET = "whsec_" + base64.b64encode(b"failover-drill-secret-of-32-byte").decode()
SECRET_ENV = {"AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET": SECRET}
KILL = "kill -9"
TERMINATE = "pg_terminate_backend"
RULES = """
[server]
enabled = true
port = 0

[[channels]]
name = "ops-hook"
type = "webhook"
url = "{url}/hooks"
max_per_hour = "off"  # every notification counts: none is held back for a summary

[[rules]]
name = "esc"
type = "escalate_severity"
every = "2s"
where = {{ status_category = ["live"], severity = ["Minor"] }}
steps = [ {{ after = "2h", to = "Major" }} ]
notify = ["ops-hook"]
"""
WAIT = 60.0  # seconds any one step may take before the drill gives up (a hang, not a timing)
HEALTH_LINE = re.compile(r"health and metrics on (\S+)/healthz")


def write_config(harness: Harness, ledger_url: str, receiver: Receiver) -> None:
    """One config for every replica: the sandbox, the PostgreSQL ledger, the webhook."""
    receiver.verify_with = SECRET
    harness.config_path.write_text(
        harness.incident_io(extra="retry_attempts = 3\n")
        + f'[store]\nurl = "{ledger_url}"\n\n'
        + RULES.format(url=receiver.url)
    )


def wait(done: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


@dataclass(frozen=True)
class Failover:
    """One takedown: how the leader went down, when, and how long until another one led."""

    how: str
    seconds: float
    at: float  # time.monotonic() of the takedown


@dataclass(frozen=True)
class Repeat:
    """A notification the receiver got again, and the takedown that followed its first copy."""

    key: str
    after: str | None  # KILL, TERMINATE, or None: no takedown came between (a bug)
    sent_lines: int  # "notification KEY sent" lines over every replica's log


@dataclass
class DrillResult:
    failovers: list[Failover] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)
    edits: dict[str, int] = field(default_factory=dict)  # incident ID -> POST edits received
    deliveries: dict[str, int] = field(default_factory=dict)  # webhook-id -> deliveries
    repeats: list[Repeat] = field(default_factory=list)
    not_escalated: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)  # each live replica's /healthz role
    unhealthy: list[str] = field(default_factory=list)
    leader_gauges: float = 0.0  # sum of automations_leader over the live replicas
    handover_seconds: float | None = None  # SIGTERM on the leader to a standby leading
    exit_codes: list[int] = field(default_factory=list)

    @property
    def duplicate_edits(self) -> int:
        return sum(n - 1 for n in self.edits.values() if n > 1)

    @property
    def duplicate_deliveries(self) -> int:
        return sum(n - 1 for n in self.deliveries.values() if n > 1)

    def repeats_after(self, how: str | None) -> list[Repeat]:
        return [r for r in self.repeats if r.after == how]

    def seconds(self, how: str | None = None) -> list[float]:
        return [f.seconds for f in self.failovers if how is None or f.how == how]


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (p95 of 20 values is the 19th): no interpolation."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))
    return ordered[int(rank) - 1]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": statistics.median(values),
        "p95": percentile(values, 0.95),
        "max": max(values),
    }


class Cluster:
    """Three (or more) daemons on one config; which one leads is asked of PostgreSQL."""

    def __init__(self, harness: Harness, ledger_url: str, replicas: int = 3) -> None:
        self.harness = harness
        self.ledger_url = ledger_url
        self.size = replicas
        self.replicas: list[DaemonProcess] = []
        self.killed: list[DaemonProcess] = []

    def start(self) -> None:
        self.replicas = [self._spawn() for _ in range(self.size)]
        self.wait_for_leader(0.0, "a first leader")

    def _spawn(self) -> DaemonProcess:
        return DaemonProcess(self.harness, env=SECRET_ENV)

    def live(self) -> list[DaemonProcess]:
        return [r for r in self.replicas if r.process.poll() is None]

    def holder(self) -> tuple[int, int] | None:
        """(daemon PID, server PID of its lock session) of the leader now; None if no one."""
        import psycopg

        with psycopg.connect(self.ledger_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT a.application_name, a.pid FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ).fetchone()
        if row is None:
            return None
        owner = Owner.parse(str(row[0]).removeprefix(APP_PREFIX))
        assert owner is not None, row
        return owner.pid, int(row[1])

    def leader(self) -> tuple[DaemonProcess, int]:
        """The leading daemon and its lock session's server PID."""
        found = self.holder()
        assert found is not None, "no replica holds the leader lock"
        pid, session = found
        [daemon] = [r for r in self.replicas if r.process.pid == pid]
        return daemon, session

    def wait_for_leader(self, since: float, what: str) -> tuple[DaemonProcess, float]:
        """The first replica to log "became leader" after ``since`` (time.monotonic()), and
        when the line came."""
        found: list[tuple[float, DaemonProcess]] = []

        def led() -> bool:
            for replica in self.replicas:
                for at, line in zip(replica.arrived, replica.lines, strict=False):
                    if at >= since and "became leader" in line:
                        found.append((at, replica))
            if not self.live():
                raise AssertionError("every replica exited:\n" + self.logs())
            return bool(found)

        wait(led, what)
        at, replica = min(found, key=lambda pair: pair[0])
        return replica, at

    def take_down(self, how: str) -> Failover:
        """Kill the leader (and start a replacement) or end its lock session; timed."""
        leader, session = self.leader()
        started = time.monotonic()
        if how == KILL:
            os.kill(leader.process.pid, signal.SIGKILL)
        else:
            assert terminate_sessions(self.ledger_url, "pid = %s", session) == 1
        _, at = self.wait_for_leader(started, f"a new leader after {how}")
        if how == KILL:
            leader.wait_exit()
            self.replicas[self.replicas.index(leader)] = self._spawn()
            self.killed.append(leader)
        return Failover(how, at - started, started)

    def health(self, result: DrillResult) -> None:
        """Each live replica's /healthz role, and the sum of their automations_leader."""
        for replica in self.live():
            replica.wait_for_line("health and metrics on", timeout=WAIT)
            match = HEALTH_LINE.search(replica.log)
            assert match is not None
            verdict = httpx.get(f"{match[1]}/healthz", timeout=10).json()
            result.roles.append(verdict["role"])
            if not verdict["ok"]:
                result.unhealthy.append(verdict["reason"])
            metrics = httpx.get(f"{match[1]}/metrics", timeout=10).text
            gauge = re.search(r"^automations_leader (\S+)$", metrics, re.M)
            assert gauge is not None
            result.leader_gauges += float(gauge[1])

    def stop(self, result: DrillResult) -> None:
        """SIGTERM the leader first (timing the handover to a standby), then the rest."""
        leader, _ = self.leader()
        asked = time.monotonic()
        result.exit_codes.append(leader.stop())
        _, at = self.wait_for_leader(asked, "a standby taking over after SIGTERM")
        result.handover_seconds = at - asked
        for replica in self.live():
            result.exit_codes.append(replica.stop())

    def kill_all(self) -> None:
        for replica in self.replicas:
            replica.kill()

    def logs(self) -> str:
        every = [*self.killed, *self.replicas]
        return "\n\n".join(f"--- PID {r.process.pid}\n{r.log}" for r in every)


def drill(
    harness: Harness, ledger_url: str, receiver: Receiver, *, rounds: int, per_round: int = 3
) -> DrillResult:
    """Run the drill: ``rounds`` takedowns, kill -9 and pg_terminate_backend in turn."""
    write_config(harness, ledger_url, receiver)
    harness.sandbox.set_faults(latency_seconds=0.05)  # actions take a moment: kills land mid-work
    result = DrillResult()
    cluster = Cluster(harness, ledger_url)
    try:
        cluster.start()
        for number in range(rounds):
            batch = [
                harness.add(f"Round {number} incident {i}", age=timedelta(hours=3))["id"]
                for i in range(per_round)
            ]
            result.incidents += batch
            wait(edited_any(harness, batch), f"the leader's first edit of round {number}")
            result.failovers.append(cluster.take_down(KILL if number % 2 == 0 else TERMINATE))
        _settle(harness, receiver, result)
        result.repeats = _repeats(receiver, result.failovers, cluster.logs())
        cluster.health(result)
        cluster.stop(result)
    finally:
        cluster.kill_all()
        harness.outputs.append(cluster.logs())
        harness.sandbox.clear_faults()
    return result


def edited_any(harness: Harness, incidents: list[str]) -> Callable[[], bool]:
    """Whether the sandbox has received an edit of one of ``incidents`` yet."""
    paths = {f"/v2/incidents/{incident}/actions/edit" for incident in incidents}
    return lambda: any(post["path"] in paths for post in harness.posts())


def _settle(harness: Harness, receiver: Receiver, result: DrillResult) -> None:
    """Wait for every incident's edit and notification, then count both."""

    def hooks() -> Counter[str]:
        return Counter(
            r.headers["webhook-id"]
            for r in list(receiver.received)
            if r.verified is not None and r.status < 300
        )

    def escalated() -> list[str]:
        return [i for i in result.incidents if harness.severity(i) != "Major"]

    wait(lambda: not escalated(), "every incident escalated")
    wait(lambda: len(hooks()) >= len(result.incidents), "every notification delivered")
    time.sleep(5.5)  # one more delivery pass (every 5 s) and cycles: a duplicate would show
    result.not_escalated = escalated()
    result.edits = dict.fromkeys(result.incidents, 0)
    for post in harness.posts():
        incident = post["path"].split("/")[3]
        if incident in result.edits:
            result.edits[incident] += 1
    result.deliveries = dict(hooks())


def _repeats(receiver: Receiver, failovers: list[Failover], logs: str) -> list[Repeat]:
    """Each delivery after the first of its ``webhook-id``, put down to the next takedown."""
    arrivals: dict[str, list[float]] = {}
    for request in receiver.received:
        if request.verified is not None and request.status < 300:
            arrivals.setdefault(request.headers["webhook-id"], []).append(request.at)
    takedowns = sorted(failovers, key=lambda f: f.at)
    repeats = []
    for key, times in arrivals.items():
        for earlier in sorted(times)[:-1]:
            after = next((f.how for f in takedowns if f.at >= earlier), None)
            sent = logs.count(f"notification {key} sent to ops-hook")
            repeats.append(Repeat(key, after, sent))
    return repeats
