"""Standard Webhooks verification with the ``standardwebhooks`` library, several secrets at once.

The library checks the headers, the HMAC-SHA256 over ``id.timestamp.body`` and
each of the space-separated ``v1,`` signatures. Its timestamp check reads the
host's wall clock with a fixed five minutes; ours replaces it (the one override
below) with the daemon's clock (the API's time, which signs the deliveries) and
``[webhooks] tolerance``, so a stale or future-dated delivery is refused the
same way in tests run a year ahead. A delivery is accepted when it verifies
with any configured secret (rotation: old and new side by side).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr
from standardwebhooks import Webhook, WebhookVerificationError

from automations.clock import Clock
from automations.errors import WebhookNotJSON, WebhookRefused

LONGEST_ID = 256  # webhook-id: Svix's are "msg_" + 27 characters


@dataclass(frozen=True)
class Verified:
    webhook_id: str
    body: Any  # the parsed JSON


class _ClockedWebhook(Webhook):
    """The library's verification, with the timestamp judged by our clock and tolerance."""

    def __init__(self, secret: str, clock: Clock, tolerance: timedelta) -> None:
        super().__init__(secret)
        self.clock = clock
        self.tolerance = tolerance

    # Replaces Webhook.__verify_timestamp (name-mangled), which reads the host's clock.
    def _Webhook__verify_timestamp(self, timestamp_header: str) -> datetime:
        try:
            timestamp = datetime.fromtimestamp(float(timestamp_header), tz=UTC)
        except (ValueError, OverflowError, OSError):
            raise WebhookVerificationError("Invalid Signature Headers") from None
        now = self.clock()
        if timestamp < now - self.tolerance:
            raise WebhookVerificationError("Message timestamp too old")
        if timestamp > now + self.tolerance:
            raise WebhookVerificationError("Message timestamp too new")
        return timestamp


# The library's messages -> what the log says (never what the sender sent).
_REASONS = {
    "Missing required headers": "webhook-id, webhook-timestamp or webhook-signature is missing",
    "Invalid Signature Headers": "webhook-timestamp is not a Unix time",
    "Message timestamp too old": "signed too long ago (webhook-timestamp beyond the tolerance)",
    "Message timestamp too new": "signed in the future (webhook-timestamp beyond the tolerance)",
    "No matching signature found": "no signature matches any configured secret",
}


class Verifier:
    """Verify deliveries against every configured secret."""

    def __init__(self, secrets: Sequence[SecretStr], clock: Clock, tolerance: timedelta) -> None:
        if not secrets:
            raise ValueError("no webhook secret")
        self._hooks = [_ClockedWebhook(s.get_secret_value(), clock, tolerance) for s in secrets]

    def verify(self, body: bytes, headers: Mapping[str, str]) -> Verified:
        """The delivery's id and parsed body; WebhookRefused when no secret verifies it."""
        reason = ""
        for hook in self._hooks:
            try:
                hook.verify(body, dict(headers), json_parse=False)
            except WebhookVerificationError as exc:
                reason = _REASONS.get(str(exc), "it did not verify")
                if str(exc) != "No matching signature found":
                    break  # headers and time are the same for every secret
                continue
            except UnicodeDecodeError:
                raise WebhookRefused("the body is not UTF-8") from None
            except ValueError:  # binascii.Error included: a signature that is not v1,<base64>
                raise WebhookRefused(
                    "webhook-signature is not a list of v1,<base64> signatures"
                ) from None
            webhook_id = headers.get("webhook-id", "")
            if len(webhook_id) > LONGEST_ID:
                raise WebhookRefused(f"webhook-id is longer than {LONGEST_ID} characters")
            try:
                return Verified(webhook_id, json.loads(body))
            except ValueError:
                raise WebhookNotJSON("the signed body is not JSON") from None
        raise WebhookRefused(reason)
