"""``Runtime.start``: the one way a command starts, and a ``with`` block closes what it opened."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from automations.config import load_config
from automations.daemon import Daemon
from automations.errors import AutomationsError
from automations.runtime import Runtime
from tests.engine_harness import Harness
from tests.test_digest_config import DIGEST, SMTP
from tests.test_engine_sandbox import ESCALATE, H


def test_start_reads_the_key_from_the_environment_and_the_block_closes_everything(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key comes from INCIDENT_IO_API_KEY; after the block the client is closed and the
    ledger's one-daemon lock released, so a second locked start succeeds."""
    harness.write(ESCALATE)
    config = load_config(harness.config_path)
    monkeypatch.setenv("INCIDENT_IO_API_KEY", harness.sandbox.api_key)
    monkeypatch.delenv("INCIDENT_IO_API_KEY_FILE", raising=False)
    with Runtime.start(config, lock=True) as runtime:
        assert runtime.catalog.severities  # the key worked: the catalog was read
        with pytest.raises(AutomationsError, match="lock"):  # a second daemon is refused meanwhile
            Runtime.start(config, lock=True)
    assert runtime.client._http.is_closed
    with Runtime.start(config, lock=True) as again:  # the lock was released
        assert again.rules


def test_the_block_closes_everything_when_the_command_fails(harness: Harness) -> None:
    """An exception inside the block still closes the client and releases the ledger."""
    harness.write(ESCALATE)
    config = load_config(harness.config_path)
    key = SecretStr(harness.sandbox.api_key)
    with pytest.raises(KeyError), Runtime.start(config, lock=True, api_key=key) as runtime:
        raise KeyError("the command failed")
    assert runtime.client._http.is_closed
    with Runtime.start(config, lock=True, api_key=key) as again:
        assert again.rules


def test_plan_and_adopt_work_while_a_daemon_holds_the_ledger(harness: Harness) -> None:
    """plan and adopt start a reading runtime, which takes no lock: beside a daemon's locked
    runtime on the same SQLite file they run, where ``once`` is refused (exit 75)."""
    harness.write(ESCALATE)
    stuck = harness.add("Stuck", age=3 * H)
    config = load_config(harness.config_path)
    with Runtime.start(config, lock=True, api_key=SecretStr(harness.sandbox.api_key)):
        refused = harness.cli("once")
        plan = harness.cli("plan")
        adopted = harness.cli("adopt")
    assert refused.returncode == 75, refused.stderr
    assert plan.returncode == 0, plan.stderr
    assert f"{stuck['reference']} 'Stuck'  [escalate-minor]" in plan.stdout
    assert adopted.returncode == 0, adopted.stderr
    assert "escalate-minor: 1 actions due now recorded as skipped (baseline)" in adopted.stdout
    assert harness.posts() == []


def test_a_reading_runtime_resolves_the_rules_alone_and_caches_nothing(harness: Harness) -> None:
    """reading (plan, adopt): ``only`` picks a rule even when disabled, the catalog is not
    written to the ledger and the engine never prunes; a locked reading start is refused."""
    harness.write(ESCALATE + "enabled = false\n")
    config = load_config(harness.config_path)
    key = SecretStr(harness.sandbox.api_key)
    with Runtime.start(config, lock=False, interactive=True, api_key=key) as everything:
        assert everything.rules == []  # the one rule is disabled
    with harness.open_ledger() as ledger:
        assert ledger.catalog.load("severities") is not None  # a plain start caches it
        ledger.catalog.save("severities", [], now=None)
    with Runtime.start(
        config, lock=False, interactive=True, api_key=key, reading=True, only="escalate-minor"
    ) as reading:
        assert [rule.name for rule in reading.rules] == ["escalate-minor"]
        assert reading.catalog.severities  # from the API, not the emptied cache
        assert reading.engine.retention is None
    with harness.open_ledger() as ledger:
        cached = ledger.catalog.load("severities")
        assert cached is not None
        assert cached[0] == []  # the emptied cache was not overwritten
    with pytest.raises(ValueError, match="lock"):
        Runtime.start(config, lock=True, api_key=key, reading=True)


def test_the_digests_and_the_smtp_password_are_built_once(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``runtime.digests`` is built on first use with the password read then; the daemon
    takes the same digests, and nothing reads the password file again."""
    secret = tmp_path / "smtp-password"
    secret.write_text("s3cret\n")
    monkeypatch.delenv("AUTOMATIONS_SMTP_PASSWORD", raising=False)
    monkeypatch.setenv("AUTOMATIONS_SMTP_PASSWORD_FILE", str(secret))
    harness.write(ESCALATE + SMTP.replace("[smtp]", '[smtp]\nusername = "bot"') + DIGEST)
    config = load_config(harness.config_path)
    with Runtime.start(config, lock=True, api_key=SecretStr(harness.sandbox.api_key)) as runtime:
        digests = runtime.digests
        secret.unlink()  # a second read would now be a ConfigError
        assert digests is not None
        assert runtime.digests is digests
        assert Daemon(runtime).digests is digests
        assert digests.mailer is not None
        assert digests.mailer._password == SecretStr("s3cret")
