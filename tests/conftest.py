"""Shared fixtures: the OpenAPI conformance checker and the running sandbox."""

from __future__ import annotations

import pytest

from tests.engine_harness import harness  # noqa: F401
from tests.openapi_conformance import Conformance, SpecMissing, load_spec
from tests.sandbox_server import sandbox, sandbox_server  # noqa: F401


@pytest.fixture(scope="session")
def openapi() -> Conformance:
    """The real incident.io schema, or a skip that says where it was looked for."""
    try:
        return Conformance(load_spec())
    except SpecMissing as exc:
        pytest.skip(str(exc))
