"""The apprise channel through apprise's ``json://`` target to a real local HTTP server."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from automations.config import load_config
from automations.errors import NotifyRetryable
from automations.logs import quiet_libraries
from automations.notify.channels.build import build_senders
from automations.notify.sender import Sender
from tests.channel_support import HOSTILE, hostile_notice, write_toml
from tests.digest_support import free_port
from tests.http_receiver import Receiver
from tests.secret_values import URL_TOKEN

KEY = "escalate-stuck-minor/01HOSTILE0000000000000000/1"


def apprise_sender(tmp_path: Path, urls: list[str] | None) -> Sender:
    listed = "" if urls is None else "urls = [" + ", ".join(f'"{u}"' for u in urls) + "]\n"
    path = write_toml(tmp_path, f'[[channels]]\nname = "chat"\ntype = "apprise"\n{listed}')
    return build_senders(load_config(path), None)["chat"]


@pytest.fixture
def apprise_debug(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The product's library levels, except apprise's own lines at DEBUG (whole URLs)."""
    names = ("httpx", "httpcore", "apscheduler", "apprise", "urllib3")
    levels = {name: logging.getLogger(name).level for name in names}
    caplog.set_level(logging.DEBUG)
    quiet_libraries()
    logging.getLogger("apprise").setLevel(logging.DEBUG)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def test_title_and_markdown_body_arrive_with_the_name_made_harmless(
    tmp_path: Path, receiver: Receiver
) -> None:
    """json:// posts {title, message}: the title is the headline, the body Markdown without HTML."""
    apprise_sender(tmp_path, [f"json://127.0.0.1:{receiver.port}/notify"]).send(
        hostile_notice(KEY), key=KEY
    )
    (got,) = receiver.received
    assert got.path == "/notify"
    payload = got.json()
    assert payload["title"] == f"INC-42 {HOSTILE}: escalate by escalate-stuck-minor"
    body = payload["message"]
    assert '**INC-42** &lt;script>alert(1)&lt;/script> & "quotes"' in body
    assert "<script>" not in body
    assert "[Open in incident.io](https://app.incident.io/acme/incidents/42)" in body
    assert "Severity: Major · Status: Investigating" in body


def test_a_failed_url_is_retryable_and_the_retry_skips_the_url_that_took_it(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Two URLs, the second answers 500: NotifyRetryable naming it; the retry sends it alone."""
    receiver.statuses = [200, 500]
    sender = apprise_sender(
        tmp_path,
        [f"json://127.0.0.1:{receiver.port}/a", f"json://127.0.0.1:{receiver.port}/b"],
    )
    with pytest.raises(NotifyRetryable, match=r"1 of 2 URLs failed: urls\[1\] \(json://\)"):
        sender.send(hostile_notice(KEY), key=KEY)
    sender.send(hostile_notice(KEY), key=KEY)
    assert [r.path for r in receiver.received] == ["/a", "/b", "/b"]
    sender.send(hostile_notice(KEY), key=KEY)  # delivered: a new send of the key goes to both
    assert [r.path for r in receiver.received][3:] == ["/a", "/b"]


@pytest.mark.usefixtures("apprise_debug")
def test_urls_from_the_environment_keep_their_tokens_out_of_messages_and_logs(
    tmp_path: Path,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """AUTOMATIONS_CHANNEL_CHAT_URLS: delivered there; the token is in no message or log line."""
    good = f"json://127.0.0.1:{receiver.port}/hook/{URL_TOKEN}"
    down = f"json://127.0.0.1:{free_port()}/hook/{URL_TOKEN}"
    monkeypatch.setenv("AUTOMATIONS_CHANNEL_CHAT_URLS", f"{good}\n  {down}\n")
    sender = apprise_sender(tmp_path, None)
    with pytest.raises(NotifyRetryable) as info:
        sender.send(hostile_notice(KEY), key=KEY)
    assert [r.path for r in receiver.received] == [f"/hook/{URL_TOKEN}"]
    message = str(info.value)
    assert "URL 1 of AUTOMATIONS_CHANNEL_CHAT_URLS (json://)" in message
    assert any(r.name == "apprise" and r.levelno == logging.DEBUG for r in caplog.records)
    for text in (
        message,
        repr(sender),
        caplog.text,
        "".join(traceback.format_exception(info.value)),
    ):
        assert URL_TOKEN not in text
