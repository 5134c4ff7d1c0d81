"""The leak check that runs after every test (conftest.py) does find a leak."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import find_leaks
from tests.secret_values import SANDBOX_KEY, SMTP_PASSWORD


def test_the_scan_finds_secrets_in_output_and_in_files(tmp_path: Path) -> None:
    assert find_leaks(["all quiet"], tmp_path) == []
    assert find_leaks([f"Bearer {SANDBOX_KEY}"], None) == ["sbx-te... in output"]
    nested = tmp_path / "a" / "ledger.db-wal"
    nested.parent.mkdir()
    nested.write_bytes(b"\\x00" + SMTP_PASSWORD.encode() + b"\\x00")
    assert find_leaks([], tmp_path) == ["smtp-p... in ledger.db-wal"]
    nested.unlink()
