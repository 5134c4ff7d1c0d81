"""Shared fixtures: the OpenAPI conformance checker, the running sandbox, and a leak check."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Fixtures that live in their own modules, loaded by name rather than imported for effect.
# Registered for assertion rewriting before the imports below load any of them.
pytest_plugins = [
    "tests.engine_harness",
    "tests.hostile_proxy",
    "tests.http_receiver",
    "tests.ledger_backends",
    "tests.postgres_server",
    "tests.sandbox_server",
]
pytest.register_assert_rewrite(*pytest_plugins)

from tests.digest_support import SMTPServer  # noqa: E402
from tests.openapi_conformance import Conformance, SpecMissing, load_spec  # noqa: E402
from tests.secret_values import SECRETS  # noqa: E402

MAX_SCANNED_FILE = 50_000_000


@pytest.fixture(scope="session", autouse=True)
def _stamina_quiet_for_client() -> None:
    """stamina's retry hooks are process-wide: set up once, as make_client does in the
    product, so clients a test builds directly log like the product's do."""
    from automations.incidentio.retries import quiet_stamina_for_client

    quiet_stamina_for_client()


@pytest.fixture(autouse=True)
def _nothing_left_open() -> Iterator[None]:
    """With AUTOMATIONS_TEST_GC=1, collect garbage after each test, so a socket or file it
    left open fails that test (filterwarnings = error) instead of whichever test the
    collector happens to run in. Off by default: it makes the suite about 70% slower."""
    yield
    if os.environ.get("AUTOMATIONS_TEST_GC") == "1":
        gc.collect()


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives."""
    server = SMTPServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The CLI (run in-process) installs its own root handler; later tests need pytest's."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def find_leaks(texts: list[str], directory: Path | None) -> list[str]:
    """Each secret found in ``texts`` or in a file under ``directory``, saying where."""
    leaks = [f"{secret[:6]}... in output" for secret in SECRETS if any(secret in t for t in texts)]
    if directory is not None:
        for path in directory.rglob("*"):
            if path.is_file() and path.stat().st_size < MAX_SCANNED_FILE:
                data = path.read_bytes()
                leaks += [f"{s[:6]}... in {path.name}" for s in SECRETS if s.encode() in data]
    return leaks


@pytest.fixture(autouse=True)
def _secrets_never_leak(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    """After every test: no secret in a log record, the CLI output or a file the test wrote.

    Files include the ledger and its WAL; CLI output is what the harness ran.
    """
    yield
    formatter = logging.Formatter()
    texts = [
        formatter.format(record)
        for phase in ("setup", "call")
        for record in caplog.get_records(phase)
    ]
    funcargs = getattr(request.node, "funcargs", None) or {}  # None after a pytest-timeout
    texts += getattr(funcargs.get("harness"), "outputs", [])
    tmp_path = funcargs.get("tmp_path")
    leaks = find_leaks(texts, tmp_path if isinstance(tmp_path, Path) else None)
    assert not leaks, f"secrets leaked: {leaks}"


@pytest.fixture(scope="session")
def openapi() -> Conformance:
    """The real incident.io schema, or a skip that says where it was looked for."""
    try:
        return Conformance(load_spec())
    except SpecMissing as exc:
        pytest.skip(str(exc))
