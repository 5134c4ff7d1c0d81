"""Helpers for the leader-election tests: end a replica's lock session the way a server would."""

from __future__ import annotations

from automations.leadership import APP_PREFIX
from automations.ledger.owners import Owner


def lock_session_name(owner: Owner) -> str:
    """The application_name of ``owner``'s lock connection (automations/leadership.py)."""
    return (APP_PREFIX + owner.text())[:63]


def terminate_sessions(url: str, where: str, *params: object) -> int:
    """``pg_terminate_backend`` the sessions of ``url``'s database matching ``where``
    (SQL on pg_stat_activity); how many were ended."""
    import psycopg

    database = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = %s AND pid <> pg_backend_pid() AND ({where})",
            [database, *params],
        ).fetchall()
    return sum(1 for (ended,) in rows if ended)


def terminate_lock_session(url: str, owner: Owner) -> int:
    """End only ``owner``'s lock connection (its ledger connection, if any, lives on)."""
    return terminate_sessions(url, "application_name = %s", lock_session_name(owner))


def terminate_leader_session(url: str) -> int:
    """End the session holding a leader lock on ``url``'s database, whoever it is."""
    return terminate_sessions(
        url,
        "pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND objsubid = 2)",
    )
