"""SMTP failures split like notification ones: DeliveryRetryable or DeliveryRejected, never both.

The digest outbox and the email channel catch the two by name (retry, or mark failed),
so the Mailer must raise one of them, against a real SMTP server (aiosmtpd).
"""

from __future__ import annotations

import pytest

from automations.digest.config import SMTPSettings
from automations.digest.delivery import Mailer
from automations.errors import DeliveryRejected, DeliveryRetryable
from tests.digest_support import SMTPServer, free_port

MESSAGE = b"From: bot@example.com\r\nTo: a@example.com\r\nSubject: hi\r\n\r\nhello\r\n"


def mailer(port: int, username: str | None = None) -> Mailer:
    settings = SMTPSettings(
        host="127.0.0.1",
        port=port,
        security="none",
        sender="Incident Bot <bot@example.com>",
        username=username,
        timeout_seconds=10,
    )
    return Mailer(settings)


def test_every_recipient_refused_for_good_is_rejected_not_retryable(smtp: SMTPServer) -> None:
    """550 for every recipient: DeliveryRejected, which is not a DeliveryRetryable."""
    smtp.handler.reject = lambda _address: "550 5.1.1 No such user"
    with pytest.raises(DeliveryRejected, match=r"550 5\.1\.1") as caught:
        mailer(smtp.port).send(MESSAGE, ["a@example.com", "b@example.com"])
    assert not isinstance(caught.value, DeliveryRetryable)
    assert smtp.received == []


def test_a_refusal_for_now_is_retryable(smtp: SMTPServer) -> None:
    """451 (greylisting) for one recipient, 550 for the other: worth retrying, not final."""
    smtp.handler.reject = lambda address: (
        "451 4.7.1 Greylisted" if address == "a@example.com" else "550 5.1.1 No such user"
    )
    with pytest.raises(DeliveryRetryable, match=r"451 4\.7\.1") as caught:
        mailer(smtp.port).send(MESSAGE, ["a@example.com", "b@example.com"])
    assert not isinstance(caught.value, DeliveryRejected)


def test_no_server_and_no_password_are_retryable() -> None:
    """Nothing listening, or a login without AUTOMATIONS_SMTP_PASSWORD: retried later."""
    with pytest.raises(DeliveryRetryable, match="cannot connect"):
        mailer(free_port()).send(MESSAGE, ["a@example.com"])
    server = SMTPServer().start()
    try:
        with pytest.raises(DeliveryRetryable, match="AUTOMATIONS_SMTP_PASSWORD"):
            mailer(server.port, username="bot").send(MESSAGE, ["a@example.com"])
    finally:
        server.stop()
    assert server.received == []
