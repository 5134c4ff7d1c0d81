"""GET /v2/users?include_inactive through the client: inactive users only when asked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.openapi_conformance import Conformance
from tests.sandbox_server import SandboxControl
from tests.test_client_against_sandbox import (
    RecordingTransport,
    api_log,
    make_client,
    use_secret_key,
    watch_logs_for_key,
)


@pytest.fixture
def org(sandbox: SandboxControl) -> SandboxControl:
    return use_secret_key(sandbox)


@pytest.fixture(autouse=True)
def no_key_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every log line of every test here, DEBUG included, lacks the key."""
    yield from watch_logs_for_key(caplog)


def queries(org: SandboxControl) -> list[dict[str, str]]:
    return [dict(map(tuple, r["query_pairs"])) for r in api_log(org, "/v2/users")]


def test_include_inactive_is_sent_only_when_asked(
    org: SandboxControl, openapi: Conformance
) -> None:
    """By default (as the API) inactive users are left out; include_inactive=True lists them too."""
    transport = RecordingTransport()
    with make_client(org.base_url, transport=transport) as client:
        org.clear_requests()
        default = list(client.iter_users(page_size=10))
        default_queries = queries(org)
        org.clear_requests()
        everyone = list(client.iter_users(page_size=10, include_inactive=True))
        everyone_queries = queries(org)
    assert {u.is_active for u in default} == {True}
    inactive = [u for u in everyone if u.is_active is False]
    assert inactive
    assert {u.id for u in everyone} == {u.id for u in default} | {u.id for u in inactive}
    assert len(default_queries) >= 2  # paged: the parameter rides on every page
    assert all("include_inactive" not in q for q in default_queries)
    assert all(q.get("include_inactive") == "true" for q in everyone_queries)
    for request, response in transport.exchanges:
        path, query = request.url.path, request.url.params.multi_items()
        openapi.validate_request("GET", path, query)
        openapi.validate_response("GET", path, response.status_code, response.json())


def test_include_inactive_finds_one_person_by_email(org: SandboxControl) -> None:
    """A person who has left is found by email only with include_inactive."""
    with make_client(org.base_url) as client:
        gone = next(u for u in client.iter_users(include_inactive=True) if u.is_active is False)
        assert gone.email is not None
        assert list(client.iter_users(email=gone.email)) == []
        found = list(client.iter_users(email=gone.email, include_inactive=True))
    assert [u.id for u in found] == [gone.id]
