"""SMTP: hand stored bytes to the server, and say whether a failure is worth retrying.

``DeliveryError`` (transient: connection, timeout, TLS, 4xx, authentication)
leaves the digest in the outbox for a retry; ``DeliveryRejected`` (the server
refused this message or every recipient with a 5xx) is final, because sending
the same bytes again cannot succeed. Authentication failures are retried:
fixing the password and restarting should still deliver what is queued.

The connection is closed after each message; a digest is a few mails a day.
Once the server has accepted the DATA, a failure to QUIT is ignored: the mail
is delivered, and reporting an error would make the outbox send it twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from automations.digest.config import SMTPSettings, address_part
from automations.errors import DeliveryError

if TYPE_CHECKING:
    import smtplib

log = logging.getLogger("automations.digest")


class DeliveryRejected(DeliveryError):
    """Permanent: resending the same message cannot succeed."""


class Mailer:
    """Sends ready-made messages through the configured SMTP server."""

    def __init__(self, settings: SMTPSettings, password: SecretStr | None = None) -> None:
        self.settings = settings
        self._password = password

    @property
    def envelope_from(self) -> str:
        return address_part(self.settings.sender)

    def __repr__(self) -> str:  # never the password
        s = self.settings
        return f"<Mailer {s.security}://{s.host}:{s.port} as {s.username or '(no login)'}>"

    def send(self, message: bytes, recipients: Sequence[str]) -> dict[str, str]:
        """Deliver or raise; returns recipients the server refused while accepting others."""
        import smtplib

        where = f"{self.settings.host}:{self.settings.port}"
        try:
            smtp = self._connect()
        except smtplib.SMTPException as exc:
            raise DeliveryError(f"SMTP {where}: cannot connect: {_describe(exc)}") from exc
        except OSError as exc:
            raise DeliveryError(f"SMTP {where}: cannot connect: {exc}") from exc
        try:
            self._login(smtp)
            refused = smtp.sendmail(self.envelope_from, list(recipients), message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            detail = "; ".join(f"{rcpt}: {_reply(c, m)}" for rcpt, (c, m) in exc.recipients.items())
            error = DeliveryRejected if all(500 <= c < 600 for c in codes) else DeliveryError
            raise error(f"SMTP {where}: every recipient refused: {detail}") from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"SMTP {where}: login failed: {_describe(exc)}") from exc
        except smtplib.SMTPResponseException as exc:
            error = DeliveryRejected if 500 <= exc.smtp_code < 600 else DeliveryError
            raise error(f"SMTP {where}: {_describe(exc)}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP {where}: {_describe(exc)}") from exc
        finally:
            _close(smtp)
        partial = {rcpt: _reply(code, msg) for rcpt, (code, msg) in refused.items()}
        if partial:
            log.warning("SMTP %s refused some recipients: %s", where, partial)
        return partial

    def _connect(self) -> smtplib.SMTP:
        import smtplib
        import ssl

        s = self.settings
        if s.security == "tls":
            return smtplib.SMTP_SSL(
                s.host, s.port, timeout=s.timeout_seconds, context=ssl.create_default_context()
            )
        smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
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
            raise DeliveryError(
                f"SMTP login as {username!r} needs AUTOMATIONS_SMTP_PASSWORD, which is not set"
            )
        smtp.login(username, self._password.get_secret_value())


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
