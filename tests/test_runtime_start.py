"""``Runtime.start``: the one way a command starts, and a ``with`` block closes what it opened."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from automations.config import load_config
from automations.errors import AutomationsError
from automations.runtime import Runtime
from tests.engine_harness import Harness
from tests.test_engine_sandbox import ESCALATE


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
