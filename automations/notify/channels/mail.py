"""The email channel: a notice as a multipart mail (text + HTML) through ``[smtp]``.

Built and sent with the digest's parts (digest/message.py, digest/delivery.py), so a
notification mail has the same headers, folding and SMTP handling as a digest. The
Message-ID is derived from the notification's key and channel, so a resend after a
crash is the same message to a mail client.

SMTP's own split carries over: DeliveryRejected (a 5xx for the message, every
recipient refused for good) is final, NotifyRejected; DeliveryRetryable
(connection, timeout, login, 4xx) is NotifyRetryable. A mail that some recipients took
counts as delivered (the others are logged by the Mailer), since resending it would
repeat it to those who have it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from automations.digest.delivery import Mailer
from automations.digest.message import build_message, stable_message_id
from automations.errors import (
    DeliveryRejected,
    DeliveryRetryable,
    NotifyRejected,
    NotifyRetryable,
)
from automations.notify.config import EmailChannel
from automations.notify.notice import Notice
from automations.notify.render import NoticeTemplates
from automations.text import one_line

SUBJECT_LIMIT = 200


class EmailSender:
    """Renders a notice with the channel's templates and mails it to to/cc/bcc."""

    def __init__(
        self,
        options: EmailChannel,
        mailer: Mailer,
        templates: NoticeTemplates,
        clock: Callable[[], datetime],
    ) -> None:
        self.options = options
        self.mailer = mailer
        self.templates = templates
        self.clock = clock

    def __repr__(self) -> str:
        return f"<EmailSender {self.options.name} via {self.mailer!r}>"

    def message(self, notice: Notice, key: str) -> bytes:
        sender = self.mailer.settings.sender
        return build_message(
            sender=sender,
            to=list(self.options.to),
            cc=list(self.options.cc),
            subject=one_line(self.templates.render("subject", notice), SUBJECT_LIMIT),
            text=self.templates.render("txt", notice),
            html=self.templates.render("html", notice),
            message_id=stable_message_id(sender, f"{key}/{self.options.name}"),
            date=self.clock(),
            channel=self.options.name,
        )

    def send(self, notice: Notice, *, key: str) -> None:
        message = self.message(notice, key)
        try:
            self.mailer.send(message, self.options.recipients)
        except DeliveryRejected as exc:
            raise NotifyRejected(f"email channel {self.options.name}: {exc}") from exc
        except DeliveryRetryable as exc:
            raise NotifyRetryable(f"email channel {self.options.name}: {exc}") from exc
