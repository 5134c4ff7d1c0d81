"""Leader election on a real PostgreSQL server: one lock holder per ledger, what frees the lock,
and how a replica notices it lost it (automations/leadership.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import httpx
import pytest

from automations.errors import LeaderRunning, LedgerError, NotLeader
from automations.health_server import HealthServer
from automations.leadership import (
    ANSWER_WITHIN,
    Election,
    Leadership,
    take_for_once,
)
from automations.ledger.owners import Owner
from automations.metrics import Metrics
from tests.leader_support import terminate_lock_session
from tests.postgres_server import PostgresServer
from tests.tcp_relay import tcp_relay

A = Owner("host-a", 101, "aaaa")
B = Owner("host-b", 202, "bbbb")


@pytest.fixture
def replicas(postgres_url: str) -> Iterator[tuple[Leadership, Leadership]]:
    """Two replicas' lock connections to one ledger."""
    a, b = Leadership(postgres_url, owner=A), Leadership(postgres_url, owner=B)
    try:
        yield a, b
    finally:
        a.release()
        b.release()


def test_one_replica_holds_the_lock_and_the_other_is_told_who(
    replicas: tuple[Leadership, Leadership],
) -> None:
    """The first to ask leads; the second is refused and names the leader's PID and host."""
    a, b = replicas
    assert a.try_acquire()
    assert not b.try_acquire()
    assert b.holder() == "PID 101 on host-a"
    a.may_act()
    with pytest.raises(NotLeader, match="standby"):
        b.may_act()


def test_a_released_lock_is_taken_by_the_standby(
    replicas: tuple[Leadership, Leadership],
) -> None:
    """SIGTERM's release frees the lock at once: the standby's next try takes it."""
    a, b = replicas
    assert a.try_acquire()
    a.release()
    assert b.try_acquire()
    assert a.holder() == "PID 202 on host-b"
    with pytest.raises(NotLeader):
        a.may_act()


def test_a_terminated_lock_session_stops_the_leader_and_frees_the_lock(
    postgres_url: str, replicas: tuple[Leadership, Leadership]
) -> None:
    """pg_terminate_backend: the leader's next check fails (NotLeader), and the lock is free."""
    a, b = replicas
    assert a.try_acquire()
    assert not b.try_acquire()
    assert terminate_lock_session(postgres_url, A) == 1
    with pytest.raises(NotLeader, match="connection failed: terminating connection"):
        a.may_act()
    assert not a.leading
    assert b.try_acquire()
    with pytest.raises(NotLeader, match="connection failed"):  # still says why it stopped
        a.may_act()


def test_a_standby_whose_idle_session_was_ended_reconnects(
    postgres_url: str, replicas: tuple[Leadership, Leadership]
) -> None:
    """A standby's own session ended by the server costs no try: it reconnects and asks again."""
    a, b = replicas
    assert a.try_acquire()
    assert not b.try_acquire()
    assert terminate_lock_session(postgres_url, B) == 1
    assert not b.try_acquire()  # answered on a new connection, no error
    assert b.holder() == "PID 101 on host-a"


def test_ledgers_on_one_server_do_not_share_a_leader(postgres: PostgresServer) -> None:
    """The lock's key comes from the database and schema: other ledgers elect their own."""
    import psycopg

    first, second = postgres.database(), postgres.database()
    with psycopg.connect(second, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA other")
    schema = f"{second}?options=-csearch_path%3Dother"
    leaders = [Leadership(url, owner=A) for url in (first, second, schema)]
    rival = Leadership(first, owner=B)  # a standby keeps its connection open: released below
    try:
        assert [leader.try_acquire() for leader in leaders] == [True, True, True]
        assert not rival.try_acquire()
    finally:
        for leader in [*leaders, rival]:
            leader.release()


def test_an_unreachable_server_is_a_ledger_error_without_the_password(
    postgres: PostgresServer,
) -> None:
    """No server at the address: LedgerError saying so, the URL's password nowhere in it."""
    secret = "pw-never-shown-1234"
    dead = f"postgresql://automations:{secret}@127.0.0.1:1/ledger"
    with pytest.raises(LedgerError) as caught:
        Leadership(dead, owner=A).try_acquire()
    assert str(caught.value).startswith(
        "cannot open ledger postgresql://automations:***@127.0.0.1:1/ledger for the leader lock: "
    )
    assert secret not in str(caught.value)


def test_once_takes_a_free_lock_and_refuses_while_a_leader_runs(
    postgres_url: str, replicas: tuple[Leadership, Leadership]
) -> None:
    """`once` leads when no one does; with a leader it fails with exit code 75, naming it."""
    mine = take_for_once(postgres_url)
    assert mine.leading
    mine.release()
    a, _ = replicas
    assert a.try_acquire()
    with pytest.raises(LeaderRunning) as caught:
        take_for_once(postgres_url)
    assert caught.value.exit_code == 75
    assert "the leader is running (PID 101 on host-a holds the leader lock" in str(caught.value)


class Steps:
    """A clock the test moves: the election's retries and checks happen when it says."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_election_logs_each_change_once_and_calls_back(
    postgres_url: str, replicas: tuple[Leadership, Leadership], caplog: pytest.LogCaptureFixture
) -> None:
    """Standby (who leads), became leader, lost leadership: one line and one callback each."""
    a, b = replicas
    assert a.try_acquire()
    seen: list[str] = []
    clock = Steps()
    election = Election(
        b,
        on_gain=lambda: seen.append("gain"),
        on_loss=lambda why: seen.append(f"loss: {why}"),
        on_standby=lambda state: seen.append(f"standby: {state}"),
        clock=clock,
    )
    caplog.set_level(logging.INFO, "automations.leadership")
    election.step()
    clock.now = 2.0
    election.step()  # the same leader: not said again
    a.release()
    clock.now = 3.0
    election.step()  # too soon after the last try
    assert not election.leader
    clock.now = 4.0
    election.step()
    assert election.leader
    assert terminate_lock_session(postgres_url, B) == 1
    clock.now = 5.0
    election.step()
    assert not election.leader
    assert election.changes == 2
    assert seen[0] == "standby: leader is PID 101 on host-a"
    assert seen[1] == "gain"
    assert seen[2].startswith("loss: the lock's connection failed: terminating connection")
    assert len(seen) == 3
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "standby: leader is PID 101 on host-a"
    assert lines[1].startswith("became leader")
    assert lines[2].startswith("lost leadership: the lock's connection failed")
    assert len(lines) == 3


def test_a_standby_that_cannot_ask_for_the_lock_warns(caplog: pytest.LogCaptureFixture) -> None:
    """The lock could not be asked (LedgerError): a warning, from the error's kind, not its
    words; the next failure with the same words is not said again."""
    dead = "postgresql://automations:pw@127.0.0.1:1/ledger"
    seen: list[str] = []
    clock = Steps()
    election = Election(
        Leadership(dead, owner=A),
        on_gain=lambda: seen.append("gain"),
        on_loss=lambda why: seen.append(f"loss: {why}"),
        on_standby=seen.append,
        clock=clock,
    )
    caplog.set_level(logging.INFO, "automations.leadership")
    election.step()
    clock.now = 10.0
    election.step()

    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("standby: cannot open ledger postgresql://")
    assert len(seen) == 1
    assert not election.leader


def test_a_failed_guard_in_a_job_makes_the_election_stand_by(
    postgres_url: str, replicas: tuple[Leadership, Leadership]
) -> None:
    """A check that failed in a cycle's guard is noticed at the election's next step."""
    a, _ = replicas
    lost: list[str] = []
    election = Election(a, on_gain=lambda: None, on_loss=lost.append, check_every=3600)
    election.step()
    assert election.leader
    terminate_lock_session(postgres_url, A)
    with pytest.raises(NotLeader):
        a.may_act()  # a job's guard
    election.step()  # no check of its own due: it reads what the guard found
    assert not election.leader
    assert len(lost) == 1
    assert lost[0].startswith("the lock's connection failed")


def _scrape(url: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics").text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in ("automations_leader", "automations_leadership_changes_total")
    }


def test_healthz_and_metrics_say_which_role_a_replica_has() -> None:
    """A standby is healthy and says who leads; the leader's health counts from its takeover;
    automations_leader is 0/1 and each change is counted."""
    metrics = Metrics(stale_after=timedelta(minutes=5))
    server = HealthServer(metrics, host="127.0.0.1", port=0).start()
    try:
        single = httpx.get(f"{server.url}/healthz").json()
        sqlite = _scrape(server.url)
        metrics.observe_standby("leader is PID 101 on host-a", changed=False)
        standby = httpx.get(f"{server.url}/healthz")
        waiting = _scrape(server.url)
        metrics.started -= 3600  # a standby for an hour: no cycle ran, and that is fine
        still = httpx.get(f"{server.url}/healthz")
        metrics.observe_leader()
        leader = httpx.get(f"{server.url}/healthz").json()
        leading = _scrape(server.url)
        metrics.observe_standby("lost leadership: the lock's connection failed", changed=True)
        lost = httpx.get(f"{server.url}/healthz").json()
        after = _scrape(server.url)
    finally:
        server.stop()
    assert single == {"ok": True, "reason": "starting: no cycle has finished yet", "role": "leader"}
    assert sqlite == {"automations_leader": 1.0, "automations_leadership_changes_total": 0.0}
    assert standby.status_code == 200
    assert standby.json() == {
        "ok": True,
        "reason": "standby: leader is PID 101 on host-a",
        "role": "standby",
    }
    assert waiting == {"automations_leader": 0.0, "automations_leadership_changes_total": 0.0}
    assert still.status_code == 200
    assert leader == {
        "ok": True,
        "reason": "leader: starting: no cycle has finished yet",
        "role": "leader",
    }
    assert leading == {"automations_leader": 1.0, "automations_leadership_changes_total": 1.0}
    assert lost["role"] == "standby"
    assert lost["reason"] == "standby: lost leadership: the lock's connection failed"
    assert after == {"automations_leader": 0.0, "automations_leadership_changes_total": 2.0}


def test_the_lock_session_is_dropped_within_seconds_of_going_silent(
    replicas: tuple[Leadership, Leadership],
) -> None:
    """The lock's session asks the server for 5 s keepalives (3 probes, 2 s apart) and a 5 s
    statement timeout: a leader whose network hangs loses the lock in about 11 s."""
    a, _ = replicas
    assert a.try_acquire()
    conn = a._conn
    assert conn is not None
    shown = {
        name: conn.execute(f"SHOW {name}").fetchone()
        for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")
    }
    assert shown == {
        "tcp_keepalives_idle": ("5",),
        "tcp_keepalives_interval": ("2",),
        "tcp_keepalives_count": ("3",),
    }
    assert conn.execute("SHOW statement_timeout").fetchone() == ("5s",)
    assert conn.info.get_parameters()["application_name"] == "automations host-a:101:aaaa"


def test_a_leader_behind_a_hung_middlebox_stops_acting_instead_of_waiting(
    postgres: PostgresServer, postgres_url: str
) -> None:
    """A relay that takes bytes and never answers: the check is cut after ANSWER_WITHIN and
    says NotLeader (no hang); once the relay's connections drop, a standby takes over."""
    database = postgres_url.rsplit("/", 1)[1]
    with tcp_relay(("127.0.0.1", postgres.port)) as relay:
        via = f"postgresql://automations@127.0.0.1:{relay.port}/{database}"
        leader, standby = Leadership(via, owner=A), Leadership(postgres_url, owner=B)
        try:
            assert leader.try_acquire()
            relay.freeze()
            asked = time.monotonic()
            with pytest.raises(NotLeader, match="the lock's connection failed"):
                leader.may_act()
            waited = time.monotonic() - asked
            assert not standby.try_acquire()  # the server still has the session: no split
            relay.close()
            wait_until(standby.try_acquire)
        finally:
            leader.release()
            standby.release()
    assert waited >= ANSWER_WITHIN - 0.5  # cut by the watchdog, not answered


def wait_until(done: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
