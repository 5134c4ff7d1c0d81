"""SMTP: hand stored bytes to the server, and say whether a failure is worth retrying.

``DeliveryRetryable`` (transient: connection, timeout, TLS, 4xx, authentication)
leaves the digest in the outbox for a retry; ``DeliveryRejected`` (the server
refused this message with a 5xx) is final, because sending the same bytes
again cannot succeed (both DeliveryErrors: the split NotifyRetryable and
NotifyRejected make for the other channels). Authentication failures are retried:
fixing the password and restarting should still deliver what is queued.

Recipients are judged one by one: a server may accept some and refuse others
(``452`` after its 100th RCPT, ``550`` for one unknown mailbox). ``deliver``
sends to those refused with ``452`` in further transactions on the same
connection, while each one makes progress, and reports an ``Outcome``: who
accepted, who was refused for now (any other 4xx, e.g. greylisting: the outbox
retries them with its backoff) and who for good (5xx: reported, never retried).

``smtp.timeout_seconds`` bounds the whole conversation (``deadline.py``), not
each socket call, so a server that trickles its replies cannot hold a send.
The connection is closed after each message; a digest is a few mails a day.
Once the server has accepted the DATA, a failure to QUIT is ignored: the mail
is delivered, and reporting an error would make the outbox send it twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from automations.digest.config import SMTPSettings, address_part
from automations.errors import DeliveryError, DeliveryRejected, DeliveryRetryable

if TYPE_CHECKING:
    import smtplib

    from automations.digest.deadline import Deadline

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What the server said about each recipient, over one send or one transaction."""

    accepted: tuple[str, ...] = ()
    later: Mapping[str, str] = field(default_factory=dict)  # refused for now (4xx): retry
    never: Mapping[str, str] = field(default_factory=dict)  # refused for good (5xx): report

    def describe(self) -> str:
        """'a@x: 451 4.7.1 greylisted; b@y: 550 5.1.1 no such user': every refusal."""
        return _listing({**self.later, **self.never})

    def describe_never(self) -> str:
        """The refusals for good only."""
        return _listing(self.never)


class Mailer:
    """Sends ready-made messages through the configured SMTP server."""

    def __init__(self, settings: SMTPSettings, password: SecretStr | None = None) -> None:
        self.settings = settings
        self._password = password

    @property
    def envelope_from(self) -> str:
        return address_part(self.settings.sender)

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def __repr__(self) -> str:  # never the password
        s = self.settings
        return f"<Mailer {s.security}://{s.host}:{s.port} as {s.username or '(no login)'}>"

    def send(self, message: bytes, recipients: Sequence[str]) -> Outcome:
        """``deliver``, raising when no recipient accepted the message (e.g. ``--to``)."""
        outcome = self.deliver(message, recipients)
        if not outcome.accepted:
            error = DeliveryRetryable if outcome.later else DeliveryRejected
            raise error(f"SMTP {self.where}: every recipient refused: {outcome.describe()}")
        if outcome.later or outcome.never:
            log.warning("SMTP %s refused some recipients: %s", self.where, outcome.describe())
        return outcome

    def deliver(
        self,
        message: bytes,
        recipients: Sequence[str],
        on_transaction: Callable[[Outcome], None] | None = None,
    ) -> Outcome:
        """Send to every recipient the server takes, in as many transactions as it needs.

        ``on_transaction`` hears each transaction's outcome as it ends, so a caller can
        record who has the message before the next one (or a failure) happens. Raises
        DeliveryRetryable (or DeliveryRejected) only when the message itself failed.
        """
        from automations.digest.deadline import Deadline

        with Deadline(self.settings.timeout_seconds) as deadline:
            try:
                return self._deliver(deadline, message, recipients, on_transaction)
            except DeliveryError as exc:
                if not deadline.passed:
                    raise
                raise DeliveryRetryable(
                    f"{exc} (gave up after {deadline.seconds:g}s: smtp.timeout_seconds bounds "
                    "the whole send)"
                ) from exc

    def _deliver(
        self,
        deadline: Deadline,
        message: bytes,
        recipients: Sequence[str],
        on_transaction: Callable[[Outcome], None] | None,
    ) -> Outcome:
        import smtplib

        where = self.where
        try:
            smtp = self._connect(deadline)
        except smtplib.SMTPException as exc:
            raise DeliveryRetryable(f"SMTP {where}: cannot connect: {_describe(exc)}") from exc
        except OSError as exc:
            raise DeliveryRetryable(f"SMTP {where}: cannot connect: {exc}") from exc
        accepted: list[str] = []
        never: dict[str, str] = {}
        later: dict[str, str] = {}
        pending = list(recipients)
        try:
            self._login(smtp)
            while pending:
                step = _transaction(smtp, self.envelope_from, pending, message)
                if on_transaction is not None:
                    on_transaction(step)
                accepted += step.accepted
                never.update(step.never)
                # "452 too many recipients" asks for another transaction, now; while they
                # make progress, send one. Any other 4xx waits for the outbox's backoff.
                pending = [r for r, reply in step.later.items() if step.accepted and _more(reply)]
                later.update({r: why for r, why in step.later.items() if r not in pending})
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryRetryable(f"SMTP {where}: login failed: {_describe(exc)}") from exc
        except smtplib.SMTPResponseException as exc:
            error = DeliveryRejected if 500 <= exc.smtp_code < 600 else DeliveryRetryable
            raise error(f"SMTP {where}: {_describe(exc)}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryRetryable(f"SMTP {where}: {_describe(exc)}") from exc
        finally:
            _close(smtp)
        return Outcome(tuple(accepted), later, never)

    def _connect(self, deadline: Deadline) -> smtplib.SMTP:
        import ssl

        from automations.digest.deadline import BoundedSMTP, BoundedSMTPSSL

        s = self.settings
        if s.security == "tls":
            return BoundedSMTPSSL(
                s.host, s.port, deadline=deadline, context=ssl.create_default_context()
            )
        smtp = BoundedSMTP(s.host, s.port, deadline=deadline)
        if s.security == "starttls":
            try:
                smtp.starttls(context=ssl.create_default_context())
            except BaseException:
                _close(smtp)
                raise
        return smtp

    def _login(self, smtp: smtplib.SMTP) -> None:
        username = self.settings.username
        if username is None:
            return
        if self._password is None:
            raise DeliveryRetryable(
                f"SMTP login as {username!r} needs AUTOMATIONS_SMTP_PASSWORD, which is not set"
            )
        smtp.login(username, self._password.get_secret_value())


def _transaction(smtp: smtplib.SMTP, sender: str, recipients: list[str], message: bytes) -> Outcome:
    """One MAIL FROM .. DATA: who accepted, who was refused for now, who for good."""
    import smtplib

    try:
        refused = smtp.sendmail(sender, recipients, message)
    except smtplib.SMTPRecipientsRefused as exc:
        # No DATA was sent, so nobody has it: after a 421 smtplib even stops asking, and
        # the recipients it had not reached are not in exc.recipients.
        never = {r: _reply(c, m) for r, (c, m) in exc.recipients.items() if 500 <= c < 600}
        unreached = "not asked: the server ended the transaction"
        later = {
            r: _reply(*exc.recipients[r]) if r in exc.recipients else unreached
            for r in recipients
            if r not in never
        }
        return Outcome((), later, never)
    later = {r: _reply(c, m) for r, (c, m) in refused.items() if not 500 <= c < 600}
    never = {r: _reply(c, m) for r, (c, m) in refused.items() if 500 <= c < 600}
    return Outcome(tuple(r for r in recipients if r not in refused), later, never)


def _listing(replies: Mapping[str, str]) -> str:
    return "; ".join(f"{rcpt}: {reply}" for rcpt, reply in replies.items())


def _more(reply: str) -> bool:
    """A 452 to RCPT: the server's recipient limit for one transaction (RFC 5321 4.5.3.1.10)."""
    return reply.startswith("452")


def _reply(code: int, message: Any) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return f"{code} {text}".strip()


def _describe(exc: BaseException) -> str:
    import smtplib

    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{type(exc).__name__}: {_reply(exc.smtp_code, exc.smtp_error)}"
    return f"{type(exc).__name__}: {exc}"


def _close(smtp: Any) -> None:
    """QUIT politely, but never let a failure here turn a delivered mail into an error."""
    try:
        smtp.quit()
    except Exception:  # the mail is already accepted, or already failed
        pass
    finally:
        smtp.close()
