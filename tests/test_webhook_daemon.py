"""``automations run`` with ``[webhooks]``: the secret from the environment, a signed delivery
acted on within seconds, and a crash between recording and processing that loses nothing;
``validate`` and start-up refuse a missing or malformed secret."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from automations.checks import check_config
from automations.config import load_config
from automations.errors import ConfigError
from automations.ledger import Ledger, WebhookDeliveryState
from automations.settings import Environment
from tests.daemon_process import DaemonProcess
from tests.digest_support import free_port
from tests.engine_harness import Harness
from tests.factories import CATALOG
from tests.secret_values import INCOMING_KEY, INCOMING_SECRET, ROTATED_SECRET
from tests.webhook_support import ESCALATE, WEBHOOKS, Sender

H = timedelta(hours=1)
VARIABLE = "AUTOMATIONS_WEBHOOK_SECRET"


def listening(harness: Harness) -> str:
    """Write a config whose listener has a fixed free port; the webhook URL."""
    port = free_port()
    harness.write(WEBHOOKS.replace("port = 0", f"port = {port}") + ESCALATE)
    return f"http://127.0.0.1:{port}/webhooks/incident-io"


def test_the_daemon_acts_on_a_signed_delivery_with_the_secret_from_a_file(
    harness: Harness, tmp_path: Path
) -> None:
    """`automations run` reads the secret from AUTOMATIONS_WEBHOOK_SECRET_FILE, serves the
    endpoint, and escalates on the delivery; its log says so, with no secret in it."""
    url = listening(harness)
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text(f"{INCOMING_SECRET}\n")
    incident = harness.add("Slow burn", age=3 * H, status="Triage")
    daemon = DaemonProcess(harness, env={"AUTOMATIONS_WEBHOOK_SECRET_FILE": str(secret_file)})
    try:
        daemon.wait_for_line("incident.io webhooks on http://127.0.0.1:")
        daemon.wait_for_line("cycle every 1h:")  # the first cycle: nothing due yet
        harness.sandbox.update_incident(incident["id"], status="Investigating")
        answer = Sender(harness, url).updated(incident["id"])
        daemon.wait_for(lambda: harness.severity(incident["id"]) == "Major", "the escalation")
        line = daemon.wait_for_line("webhook: 1 delivery about 1 incident")
        assert daemon.stop() == 0
    finally:
        daemon.kill()
        secret_file.unlink()  # the test's own copy: only a copy elsewhere would be a leak
    assert answer.status_code == 200
    assert "1 applied" in line
    assert "after the first arrived" in line


def states(harness: Harness) -> list[str]:
    """The deliveries' states, read beside the running daemon (the ledger is in WAL mode)."""
    with Ledger(harness.ledger_path) as ledger:
        return [d.state.value for d in ledger.webhooks.history()]


def test_a_crash_between_recording_and_processing_loses_no_delivery(harness: Harness) -> None:
    """The daemon dies (exit 137, as kill -9) once a delivery is recorded, before it is
    processed; the next start processes it from the ledger."""
    url = listening(harness)
    incident = harness.add("Due", age=3 * H, status="Triage")
    crashing = DaemonProcess(
        harness,
        env={
            "AUTOMATIONS_WEBHOOK_SECRET": INCOMING_SECRET,
            "AUTOMATIONS_FAILPOINTS": "before_webhook_processing",
        },
    )
    try:
        crashing.wait_for_line("cycle every 1h:")  # the first cycle: nothing due yet
        harness.sandbox.update_incident(incident["id"], status="Investigating")
        try:
            answer: int | str = Sender(harness, url).updated(incident["id"]).status_code
        except httpx.HTTPError as exc:  # the process may die before the 200 leaves
            answer = type(exc).__name__
        assert crashing.wait_exit() == 137
    finally:
        crashing.kill()
    with Ledger(harness.ledger_path) as ledger:
        (queued,) = ledger.webhooks.history()
    assert harness.severity(incident["id"]) == "Minor"
    restarted = DaemonProcess(harness, env={"AUTOMATIONS_WEBHOOK_SECRET": INCOMING_SECRET})
    try:
        restarted.wait_for(lambda: harness.severity(incident["id"]) == "Major", "the escalation")
        # Its first cycle may have escalated it first: the delivery must be processed anyway.
        restarted.wait_for(lambda: states(harness) == ["processed"], "the delivery processed")
        assert restarted.stop() == 0
    finally:
        restarted.kill()
    with Ledger(harness.ledger_path) as ledger:
        (processed,) = ledger.webhooks.history()
    assert answer in (200, "RemoteProtocolError", "ReadError", "ConnectError")
    assert queued.state is WebhookDeliveryState.QUEUED
    assert processed.state is WebhookDeliveryState.PROCESSED
    assert len(harness.posts()) == 1


def test_validate_and_run_refuse_a_missing_secret(harness: Harness) -> None:
    """Without AUTOMATIONS_WEBHOOK_SECRET, `validate` and `run` exit 78 saying which variable
    to set; `validate --offline` (no secrets) passes."""
    listening(harness)
    validated = harness.cli("validate")
    run = harness.cli("run", timeout=60)
    offline = harness.cli("validate", "--offline")
    for result in (validated, run):
        assert result.returncode == 78, result.stderr
        assert "webhooks: no signing secret: set AUTOMATIONS_WEBHOOK_SECRET" in result.stderr
        assert "Traceback" not in result.stderr
    assert offline.returncode == 0, offline.stderr


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "not-a-secret",
            "webhooks: the secret in AUTOMATIONS_WEBHOOK_SECRET (or its _FILE) must start with "
            "'whsec_'",
        ),
        (
            "whsec_!!!notbase64",
            "webhooks: the secret in AUTOMATIONS_WEBHOOK_SECRET (or its _FILE) is not base64",
        ),
        ("whsec_c2hvcnQ=", "holds a key of 5 bytes; Standard Webhooks asks for 24 to 64"),
        (f"{INCOMING_SECRET} whsec_oops!", "webhooks: secret 2 of 2 in AUTOMATIONS_WEBHOOK_SECRET"),
    ],
)
def test_a_malformed_secret_is_a_config_error_that_never_quotes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    """Each malformed secret is refused with the variable named and the secret not shown."""
    path = tmp_path / "automations.toml"
    path.write_text(WEBHOOKS)
    monkeypatch.setenv(VARIABLE, value)
    with pytest.raises(ConfigError) as info:
        check_config(load_config(path), CATALOG, Environment())
    message = str(info.value)
    assert expected in message, message
    assert message.startswith(f"{path}: ")
    for part in value.split():
        assert part.removeprefix("whsec_") not in message


def test_secrets_for_a_rotation_are_checked_and_a_disabled_endpoint_needs_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two well-formed secrets pass; with [webhooks] disabled no secret is asked for."""
    path = tmp_path / "automations.toml"
    path.write_text(WEBHOOKS)
    monkeypatch.setenv(VARIABLE, f"{INCOMING_SECRET}\n{ROTATED_SECRET}")
    check_config(load_config(path), CATALOG, Environment())
    monkeypatch.delenv(VARIABLE)
    path.write_text(WEBHOOKS.replace("[webhooks]\nenabled = true", "[webhooks]\nenabled = false"))
    check_config(load_config(path), CATALOG, Environment())
    assert INCOMING_KEY not in path.read_text()
