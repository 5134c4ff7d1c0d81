"""A refused key (401, 403) and an unreachable API, explained so a person knows what to do.

Through the real CLI against the sandbox: exit 77 (EX_NOPERM) for a refused key,
naming the variable the key came from (never the key) and the permission that is
missing; an unreachable API fails an interactive command within 10 s, naming base_url.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from automations.config import load_config
from automations.errors import APIAccessDenied
from automations.incidentio import IncidentEdit
from automations.incidentio.explain import explain_access_denied
from automations.runtime import make_client
from tests.engine_harness import Harness
from tests.sandbox_server import SandboxControl
from tests.test_engine_sandbox import ESCALATE

H = timedelta(hours=1)
WRONG_KEY = "inc_wrong_key_Ux81Pz"  # refused by the sandbox; must never be printed
DIGEST = """
[smtp]
host = "127.0.0.1"
security = "none"
sender = "Incident Bot <incidents@example.com>"

[[digests]]
name = "daily"
cron = "0 8 * * mon-fri"
timezone = "Europe/London"
to = ["oncall@example.com"]
enabled = false
"""
INTERACTIVE = [("validate",), ("plan",), ("digest", "preview", "daily")]
WHERE_KEYS = "in the incident.io dashboard under Settings -> API keys"


def cli(harness: Harness, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """harness.cli, but the environment may replace the API key."""
    command = [sys.executable, "-m", "automations", *args, "--config", str(harness.config_path)]
    result = subprocess.run(
        command, env={**harness.env(), **env}, capture_output=True, text=True, timeout=60
    )
    harness.outputs += [result.stdout, result.stderr]
    return result


def error_line(stderr: str) -> str:
    """The one line the user is told (log lines come before it)."""
    (line,) = [line for line in stderr.splitlines() if line.startswith("error: ")]
    return line


def write_without_retry_settings(harness: Harness, base_url: str, body: str) -> None:
    """A config as users write it: the default retry_attempts (8), not the harness's 3."""
    harness.config_path.write_text(
        harness.incident_io(base_url) + f'[store]\npath = "{harness.ledger_path}"\n' + body
    )


@pytest.mark.parametrize("command", [*INTERACTIVE, ("once",)])
def test_a_wrong_key_exits_77_naming_its_variable(harness: Harness, command: tuple[str]) -> None:
    """401: which variable held the key, where to make one, exit 77; the key never shown."""
    harness.write(ESCALATE + DIGEST)

    result = cli(harness, *command, INCIDENT_IO_API_KEY=WRONG_KEY)

    assert result.returncode == 77, result.stderr
    assert error_line(result.stderr).startswith(
        "error: incident.io did not accept the API key from INCIDENT_IO_API_KEY on "
        "GET /v2/custom_fields (HTTP 401 authentication_error invalid_authorization_material: "
        '"The API key is not valid") (request_id '
    ), result.stderr
    assert WHERE_KEYS in result.stderr
    assert WRONG_KEY not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_a_wrong_key_from_a_file_names_the_file(harness: Harness, tmp_path: Path) -> None:
    """INCIDENT_IO_API_KEY_FILE: the message names the file and the variable, not the key."""
    harness.write(ESCALATE)
    key_file = tmp_path / "incident-io-key"
    key_file.write_text(WRONG_KEY + "\n")

    result = cli(
        harness, "validate", INCIDENT_IO_API_KEY_FILE=str(key_file), INCIDENT_IO_API_KEY=""
    )

    assert result.returncode == 77, result.stderr
    assert (
        f"the API key from the file {key_file} (named by INCIDENT_IO_API_KEY_FILE)" in result.stderr
    )
    assert WRONG_KEY not in result.stdout + result.stderr


def test_once_does_not_fall_back_to_the_cached_catalog_on_a_refused_key(harness: Harness) -> None:
    """A revoked key is not an outage: `once` exits 77 even when the ledger caches the names."""
    harness.write(ESCALATE)
    assert harness.cli("once").returncode == 0  # caches the catalog in the ledger
    harness.add("Stuck for hours", age=3 * H)

    result = cli(harness, "once", INCIDENT_IO_API_KEY=WRONG_KEY)

    assert result.returncode == 77, result.stderr
    assert harness.posts() == []


def test_a_key_without_view_data_exits_77_naming_the_permission(harness: Harness) -> None:
    """403 on the catalog: the key lacks View data; the API's own words are quoted."""
    harness.write(ESCALATE)
    harness.sandbox.set_faults(
        next=[{"kind": "forbidden", "message": "Missing scope: incidents.read"}],
        paths=["/v1/severities"],
    )

    result = harness.cli("plan")

    assert result.returncode == 77, result.stderr
    assert error_line(result.stderr).startswith(
        "error: incident.io refused GET /v1/severities (HTTP 403 resource_forbidden forbidden: "
        '"Missing scope: incidents.read") (request_id '
    ), result.stderr
    assert "the API key from INCIDENT_IO_API_KEY lacks the 'View data' permission" in result.stderr
    assert WHERE_KEYS in result.stderr


def test_a_refused_edit_names_edit_incidents(sandbox: SandboxControl, tmp_path: Path) -> None:
    """403 on POST .../actions/edit maps to the Edit incidents permission."""
    path = tmp_path / "automations.toml"
    path.write_text(f'[incident_io]\nbase_url = "{sandbox.base_url}"\n')
    sandbox.set_faults(next=[{"kind": "forbidden"}], paths=["/v2/incidents/"])
    incident = sandbox.add_incident(name="Stuck", status="Investigating", severity="Minor")
    with make_client(load_config(path), SecretStr(sandbox.api_key)) as client:
        severity = client.list_severities()[-1]
        with pytest.raises(APIAccessDenied) as refused:
            client.edit_incident(
                incident["id"],
                IncidentEdit(severity_id=severity.id),
                notify_incident_channel=False,
            )

    assert refused.value.status == 403
    assert refused.value.exit_code == 77
    text = explain_access_denied(refused.value, "INCIDENT_IO_API_KEY")
    assert "incident.io refused POST /v2/incidents/{id}/actions/edit (HTTP 403" in text
    assert "lacks the 'Edit incidents' permission" in text
    assert '"The API key does not have permission to perform this action"' in text
    assert sandbox.incident(incident["id"])["severity"]["name"] == "Minor"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the probe is


@pytest.mark.parametrize("command", INTERACTIVE)
def test_an_unreachable_api_fails_an_interactive_command_within_10s(
    harness: Harness, command: tuple[str]
) -> None:
    """A closed port: the command gives up in seconds, naming base_url, not after minutes."""
    url = f"http://127.0.0.1:{_closed_port()}"
    write_without_retry_settings(harness, url, ESCALATE + DIGEST)

    started = time.monotonic()
    result = harness.cli(*command, timeout=60)
    elapsed = time.monotonic() - started

    assert elapsed < 10, elapsed
    assert result.returncode == 1, result.stderr
    line = error_line(result.stderr)
    assert line.startswith(
        f"error: cannot reach the incident.io API at {url} (incident_io.base_url): GET "
    ), line
    assert "failed: ConnectError: [Errno 111] Connection refused" in line
    assert "gave up after 3 attempts in" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_sandbox_that_drops_connections_fails_within_10s(harness: Harness) -> None:
    """Every connection dropped mid-answer: the same quick, clear failure."""
    write_without_retry_settings(harness, harness.sandbox.base_url, ESCALATE)
    harness.sandbox.set_faults(drop_rate=1.0)

    started = time.monotonic()
    result = harness.cli("plan", timeout=60)
    elapsed = time.monotonic() - started

    assert elapsed < 10, elapsed
    assert result.returncode == 1, result.stderr
    line = error_line(result.stderr)
    assert line.startswith(
        f"error: cannot reach the incident.io API at {harness.sandbox.base_url} "
        "(incident_io.base_url): GET "
    ), line
    assert "failed: RemoteProtocolError: peer closed connection" in line
    assert "gave up after 3 attempts in" in line


def test_the_daemon_keeps_its_retry_budget(tmp_path: Path) -> None:
    """run/once retry as configured for two minutes; interactive commands for 8 s, 3 tries."""
    path = tmp_path / "automations.toml"
    path.write_text("[incident_io]\nretry_attempts = 12\ntimeout_seconds = 45\n")
    config = load_config(path)
    with make_client(config, SecretStr("key")) as daemon:
        assert (daemon._retry.attempts, daemon._retry.timeout) == (12, 120.0)
        assert daemon._http.timeout.connect == 45
    with make_client(config, SecretStr("key"), interactive=True) as person:
        assert (person._retry.attempts, person._retry.timeout) == (3, 8.0)
        assert (person._http.timeout.connect, person._http.timeout.read) == (3.0, 8.0)
