"""Secrets the tests use, distinctive enough to search for in every output afterwards.

Every test's logs, subprocess output and files are searched for these (see
conftest.py), so a leak anywhere fails the test that caused it.
"""

from __future__ import annotations

SANDBOX_KEY = "sbx-test-key-7Qm2Vd9Lx4"
SMTP_PASSWORD = "smtp-pw-Zq81x0LkA"
SECRETS = (SANDBOX_KEY, SMTP_PASSWORD)
