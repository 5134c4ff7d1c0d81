"""The webhook channel over real HTTP, checked by a receiver that verifies each request with
the ``standardwebhooks`` library (as any receiver would), never by inspecting our code."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from automations.clock import host_now
from automations.config import load_config
from automations.errors import NotifyRejected, NotifyRetryable
from automations.logs import quiet_libraries
from automations.notify.channels.build import build_senders
from automations.notify.channels.webhook import WebhookSender
from tests.channel_support import HOSTILE, hostile_notice, write_toml
from tests.digest_support import free_port
from tests.http_receiver import Receiver
from tests.secret_values import URL_TOKEN, WEBHOOK_KEY, WEBHOOK_SECRET

KEY = "escalate-stuck-minor/01HOSTILE0000000000000000/1"


@pytest.fixture
def production_logging(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Everything at DEBUG, with the library levels `automations` itself sets."""
    names = ("httpx", "httpcore", "apscheduler", "apprise", "urllib3")
    levels = {name: logging.getLogger(name).level for name in names}
    caplog.set_level(logging.DEBUG)
    quiet_libraries()
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def sender(url: str, secret: str = WEBHOOK_SECRET) -> WebhookSender:
    return WebhookSender("ops-hook", url, SecretStr(secret), timeout_seconds=5, clock=host_now)


def test_the_post_verifies_with_standardwebhooks_and_carries_the_notice(
    receiver: Receiver,
) -> None:
    """One signed POST: it verifies, webhook-id is the key, the body is the notice's JSON."""
    receiver.verify_with = WEBHOOK_SECRET
    notice = hostile_notice(KEY)
    sender(f"{receiver.url}/hooks/incidents").send(notice, key=KEY)
    (got,) = receiver.received
    assert got.verify_error is None
    assert got.path == "/hooks/incidents"
    assert got.headers["webhook-id"] == KEY
    assert got.headers["content-type"] == "application/json"
    assert got.headers["webhook-signature"].startswith("v1,")
    assert got.verified == notice.webhook_body()
    assert got.body == json.dumps(
        notice.webhook_body(), separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")  # compact: what was signed is what was sent
    data = got.verified["data"]
    assert data["incident"]["name"] == HOSTILE  # JSON-escaped on the wire, intact when read
    assert data["incident"]["reference"] == "INC-42"
    assert "private" not in data["incident"]
    assert got.verified["type"] == "action.applied"


def test_a_retry_after_a_500_is_the_same_webhook_id_and_verifies_again(
    receiver: Receiver,
) -> None:
    """500 is retryable; the retry carries the same webhook-id (so receivers de-duplicate)."""
    receiver.verify_with = WEBHOOK_SECRET
    receiver.statuses = [500]
    webhook = sender(f"{receiver.url}/hook")
    with pytest.raises(NotifyRetryable, match="HTTP 500"):
        webhook.send(hostile_notice(KEY), key=KEY)
    webhook.send(hostile_notice(KEY), key=KEY)
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == KEY
    assert first.verify_error is None
    assert second.verify_error is None
    assert [first.status, second.status] == [500, 200]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (410, NotifyRejected),
        (400, NotifyRejected),
        (302, NotifyRejected),
        (408, NotifyRetryable),
        (429, NotifyRetryable),
        (503, NotifyRetryable),
    ],
)
def test_each_status_is_final_or_retried(
    receiver: Receiver, status: int, error: type[Exception]
) -> None:
    """4xx is final except 408 and 429; 5xx is retried; a redirect is not followed."""
    receiver.statuses = [status]
    with pytest.raises(error, match=f"HTTP {status}"):
        sender(f"{receiver.url}/hook").send(hostile_notice(KEY), key=KEY)
    assert [r.path for r in receiver.received] == ["/hook"]  # one request, never /elsewhere


def test_a_closed_port_is_retryable() -> None:
    """Nothing listening: a connection error, retried later."""
    with pytest.raises(NotifyRetryable, match="cannot connect"):
        sender(f"http://127.0.0.1:{free_port()}/hook").send(hostile_notice(KEY), key=KEY)


@pytest.mark.usefixtures("production_logging")
def test_the_secret_and_the_urls_tokens_are_in_no_message_or_log(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Failures name scheme://host/path only: never the secret, the userinfo or the query."""
    url = f"http://hookuser:{URL_TOKEN}x@127.0.0.1:{receiver.port}/hook?token={URL_TOKEN}"
    closed = f"http://127.0.0.1:{free_port()}/hook?token={URL_TOKEN}"
    receiver.statuses = [500, 410]
    errors: list[BaseException] = []
    for target in (url, url, closed):
        with pytest.raises((NotifyRetryable, NotifyRejected)) as info:
            sender(target).send(hostile_notice(KEY), key=KEY)
        errors.append(info.value)
    assert f"http://127.0.0.1:{receiver.port}/hook" in str(errors[0])
    texts = [caplog.text]
    for exc in errors:
        texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    for text in texts:
        for secret in (WEBHOOK_SECRET, WEBHOOK_KEY, URL_TOKEN, "hookuser"):
            assert secret not in text
    assert repr(sender(url)) == f"<WebhookSender ops-hook -> http://127.0.0.1:{receiver.port}/hook>"
    assert len(receiver.received) == 2  # the query reached the receiver: only messages omit it
    assert receiver.received[0].path == f"/hook?token={URL_TOKEN}"


def test_configured_channel_reads_its_secret_from_the_environment(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[[channels]] type webhook + AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET: signed and verified."""
    receiver.verify_with = WEBHOOK_SECRET
    path = write_toml(
        tmp_path,
        f'[[channels]]\nname = "ops-hook"\ntype = "webhook"\nurl = "{receiver.url}/in"\n',
    )
    monkeypatch.setenv("AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET", WEBHOOK_SECRET)
    senders = build_senders(load_config(path), None)
    senders["ops-hook"].send(hostile_notice(KEY), key=KEY)
    (got,) = receiver.received
    assert got.verify_error is None
    assert got.headers["webhook-id"] == KEY


def test_the_secret_may_come_from_a_file(
    receiver: Receiver,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AUTOMATIONS_CHANNEL_<NAME>_SECRET_FILE (a Docker or Kubernetes secret) works the same."""
    receiver.verify_with = WEBHOOK_SECRET
    secret_file = tmp_path_factory.mktemp("secrets") / "hook-secret"
    secret_file.write_text(WEBHOOK_SECRET + "\n")
    path = write_toml(
        tmp_path, f'[[channels]]\nname = "ops_hook2"\ntype = "webhook"\nurl = "{receiver.url}"\n'
    )
    monkeypatch.setenv("AUTOMATIONS_CHANNEL_OPS_HOOK2_SECRET_FILE", str(secret_file))
    build_senders(load_config(path), None)["ops_hook2"].send(hostile_notice(KEY), key=KEY)
    assert receiver.received[0].verify_error is None


def test_a_receiver_with_another_secret_refuses_the_signature(receiver: Receiver) -> None:
    """The signature really depends on the secret: a receiver holding another one rejects it."""
    receiver.verify_with = "whsec_" + "b3RoZXItc2VjcmV0LW9mLTMyLWJ5dGVzLWxvbmctLS0="
    sender(receiver.url).send(hostile_notice(KEY), key=KEY)
    assert receiver.received[0].verify_error is not None
    assert "signature" in receiver.received[0].verify_error.lower()
