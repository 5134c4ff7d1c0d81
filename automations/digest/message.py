"""One RFC 5322 message: multipart/alternative (text, then HTML), Date and Message-ID.

Kept apart from the SMTP code (as urlwatch does) so the exact bytes can be
built once, stored in the outbox and sent unchanged on every retry: the same
Message-ID each time lets receivers drop a duplicate.

Header values that come from incident text (the subject) are folded to one
line by ``one_line``; addresses come from the config, where a line break is
refused. ``email.policy.SMTP`` folds long headers and encodes non-ASCII ones
(RFC 2047), with CRLF line ends as SMTP wants.
"""

from __future__ import annotations

import email.policy
import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

from automations import __version__
from automations.digest.config import address_part
from automations.digest.content import one_line


def new_message_id(sender: str, digest: str, period: str) -> str:
    """A unique Message-ID in the sender's domain, naming the period.

    Kept short (the digest's name is in X-Automations-Digest) so the header fits
    on one 78-character line for common domains: a folded Message-ID is legal,
    but some tools read it back with the folding space in front.
    """
    domain = address_part(sender).rpartition("@")[2] or "automations.invalid"
    stamp = "".join(ch for ch in period if ch.isalnum())[:13]  # 20261123T0800
    return f"<{secrets.token_hex(8)}.{stamp}@{domain}>"


def stable_message_id(sender: str, seed: str) -> str:
    """The same Message-ID for the same ``seed`` (a notification's key), in the sender's
    domain: a notification resent after a crash is recognisably the one already received."""
    domain = address_part(sender).rpartition("@")[2] or "automations.invalid"
    return f"<{hashlib.sha256(seed.encode()).hexdigest()[:32]}@{domain}>"


def build_message(
    *,
    sender: str,
    to: Sequence[str],
    cc: Sequence[str] = (),
    subject: str,
    text: str,
    html: str,
    message_id: str,
    date: datetime,
    digest: str | None = None,
    channel: str | None = None,
) -> bytes:
    """The bytes to hand to SMTP. Bcc recipients are envelope-only, never a header.

    ``digest`` or ``channel`` (a notification channel) names what sent it in an
    X-Automations-* header; with only bcc recipients there is no To: header.
    """
    message = EmailMessage(policy=email.policy.SMTP)
    message["Subject"] = one_line(subject, 900)
    message["From"] = sender
    if to:
        message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    # RFC 3834: machine-generated, so auto-responders (out of office) stay quiet.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    if digest is not None:
        message["X-Automations-Digest"] = one_line(digest, 64)
    if channel is not None:
        message["X-Automations-Channel"] = one_line(channel, 64)
    message["X-Mailer"] = f"automations {__version__}"
    message.set_content(text, subtype="plain", charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    return message.as_bytes()
