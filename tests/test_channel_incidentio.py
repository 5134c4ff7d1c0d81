"""The channels that call incident.io (escalation, the incident's timeline), against the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from automations.clock import host_now
from automations.config import load_config
from automations.errors import ConfigError, NotifyRejected, NotifyRetryable, Problems
from automations.incidentio import IncidentIOClient, TokenBucket
from automations.notify.channels.build import build_senders, check_channels
from automations.notify.notice import Notice
from automations.notify.sample import probe_notice
from automations.notify.sender import INCIDENT_UPDATE_CHANNEL
from automations.sandbox import SandboxThread
from tests.channel_support import HOSTILE, hostile_notice, write_toml
from tests.sandbox_server import SandboxControl
from tests.secret_values import SANDBOX_KEY

PAGE = '[[channels]]\nname = "page-platform"\ntype = "escalation"\nescalation_path = "{path}"\n'


@pytest.fixture
def client(sandbox: SandboxControl) -> Iterator[IncidentIOClient]:
    """A client of the reset sandbox that gives up at once (faults are tested, not waited out)."""
    with IncidentIOClient(
        base_url=sandbox.base_url,
        api_key=SecretStr(SANDBOX_KEY),
        requests_per_minute=60_000,
        retry_attempts=1,
        max_clock_skew=None,
        escalations_rate_limiter=TokenBucket(60_000, burst=100),  # the route's pace is not tested
    ) as c:
        yield c


def escalations(server: SandboxThread) -> list[Any]:
    return list(server.app.state.sandbox.oncall.escalations)


def on_incident(sandbox: SandboxControl, key: str, **details: Any) -> Notice:
    """The hostile notice, about a real incident of the sandbox with the hostile name."""
    incident = sandbox.add_incident(name=HOSTILE, status="Investigating", severity="Minor")
    notice = hostile_notice(key, incident_id=incident["id"])
    return Notice(**{**notice.__dict__, "details": details})


def test_an_escalation_channel_pages_the_path_once_per_key(
    tmp_path: Path, client: IncidentIOClient, sandbox: SandboxControl, sandbox_server: SandboxThread
) -> None:
    """Sent twice with one key: one escalation, on the named path, linked to the incident."""
    config = load_config(write_toml(tmp_path, PAGE.format(path="Platform primary")))
    sender = build_senders(config, client)["page-platform"]
    notice = on_incident(sandbox, "esc-rule/inc/1")
    sender.send(notice, key="esc-rule/inc/1")
    sender.send(notice, key="esc-rule/inc/1")
    (made,) = escalations(sandbox_server)
    path = next(p for p in client.iter_escalation_paths() if p.name == "Platform primary")
    assert made.escalation_path_id == path.id
    assert notice.incident is not None
    assert made.incident_id == notice.incident.id
    assert made.title == f"INC-42 {HOSTILE}: escalate by escalate-stuck-minor"
    assert "&lt;script>alert(1)&lt;/script>" in made.description
    posts = [r for r in sandbox.requests() if r["path"] == "/v2/escalations"]
    assert [r["status"] for r in posts] == [201, 201]
    sender.send(notice, key="esc-rule/inc/2")  # another notification: another page
    assert len(escalations(sandbox_server)) == 2


def test_a_test_notice_pages_without_linking_its_made_up_incident(
    tmp_path: Path, client: IncidentIOClient, sandbox_server: SandboxThread
) -> None:
    """`notify test` on an escalation channel: a real page, no incident_id (it is invented)."""
    config = load_config(write_toml(tmp_path, PAGE.format(path="platform PRIMARY")))
    notice = probe_notice("page-platform", host_now())
    build_senders(config, client)["page-platform"].send(notice, key=notice.event_key)
    (made,) = escalations(sandbox_server)
    assert made.incident_id is None
    assert made.title == "Test notification from automations"


def test_an_unknown_path_is_a_config_error_at_start_up_listing_the_valid_ones(
    tmp_path: Path, client: IncidentIOClient
) -> None:
    """build_senders and the whole-file check both name the key and list the paths."""
    config = load_config(write_toml(tmp_path, PAGE.format(path="Platform secondary")))
    expected = (
        "channels[0].escalation_path: 'Platform secondary' is not an escalation path; "
        "valid: 'Payments urgent', 'Platform primary'"
    )
    with pytest.raises(ConfigError) as info:
        build_senders(config, client)
    assert str(info.value) == f"{config.path}: {expected}"
    problems = Problems()
    check_channels(config, problems, environ={}, client=client)
    assert problems.lines == [expected]


def test_refusals_are_final_and_an_unavailable_api_is_retried(
    tmp_path: Path, client: IncidentIOClient, sandbox: SandboxControl
) -> None:
    """A 422 (no such user) is NotifyRejected; a 503 is NotifyRetryable."""
    body = '[[channels]]\nname = "page-people"\ntype = "escalation"\nuser_ids = ["01NOSUCHUSER"]\n'
    sender = build_senders(load_config(write_toml(tmp_path, body)), client)["page-people"]
    notice = on_incident(sandbox, "r/i/1")
    with pytest.raises(NotifyRejected, match=r"escalation channel page-people: .*user"):
        sender.send(notice, key="r/i/1")
    sandbox.set_faults(next=[{"kind": "status", "status": 503}], paths=["/v2/escalations"])
    with pytest.raises(NotifyRetryable, match="status=503"):
        sender.send(notice, key="r/i/1")


def test_the_incident_timeline_gets_one_update_per_key(
    tmp_path: Path, client: IncidentIOClient, sandbox: SandboxControl
) -> None:
    """INCIDENT_UPDATE_CHANNEL posts the rule's message once, however often it is sent."""
    senders = build_senders(load_config(write_toml(tmp_path, "")), client)
    message = "Escalated automatically: live for 2h"
    notice = on_incident(sandbox, "esc-rule/inc/1", message=message)
    assert notice.incident is not None
    senders[INCIDENT_UPDATE_CHANNEL].send(notice, key="esc-rule/inc/1")
    senders[INCIDENT_UPDATE_CHANNEL].send(notice, key="esc-rule/inc/1")
    updates = [u for u in client.iter_incident_updates(notice.incident.id) if u.message == message]
    assert len(updates) == 1
    posts = [
        r
        for r in sandbox.requests()
        if (r["method"], r["path"]) == ("POST", "/v2/incident_updates")
    ]
    assert [r["status"] for r in posts] == [201, 201]
    without = on_incident(sandbox, "esc-rule/inc/2")
    with pytest.raises(NotifyRejected, match="no incident or no message"):
        senders[INCIDENT_UPDATE_CHANNEL].send(without, key="esc-rule/inc/2")
