"""Secrets the tests use, distinctive enough to search for in every output afterwards.

Every test's logs, subprocess output and files are searched for these (see
conftest.py), so a leak anywhere fails the test that caused it.
"""

from __future__ import annotations

SANDBOX_KEY = "sbx-test-key-7Qm2Vd9Lx4"
SMTP_PASSWORD = "smtp-pw-Zq81x0LkA"
# A webhook channel's signing secret ("whsec_" + base64 of 32 bytes) and its base64 part.
WEBHOOK_KEY = "d2ViaG9vay10ZXN0LXNlY3JldC1ReDdMbTJWZDlUeTQ="
WEBHOOK_SECRET = f"whsec_{WEBHOOK_KEY}"
# The secrets incident.io signs its deliveries with (AUTOMATIONS_WEBHOOK_SECRET): the old
# and the new one of a rotation, and their base64 parts.
INCOMING_KEY = "aW5jb21pbmctaG9vay1zZWNyZXQtb25lLUtwM1pyOFdx"
INCOMING_SECRET = f"whsec_{INCOMING_KEY}"
ROTATED_KEY = "aW5jb21pbmctaG9vay1zZWNyZXQtdHdvLVRtNll2MU54"
ROTATED_SECRET = f"whsec_{ROTATED_KEY}"
# A token inside an apprise URL or a webhook URL's query.
URL_TOKEN = "tok-Hn4c8Vq2ZpR7"
# A PostgreSQL ledger's password, inside a store URL.
DB_PASSWORD = "pg-pw-Tx93Kd0Wq5"
SECRETS = (
    SANDBOX_KEY,
    SMTP_PASSWORD,
    WEBHOOK_KEY,
    URL_TOKEN,
    INCOMING_KEY,
    ROTATED_KEY,
    DB_PASSWORD,
)
