"""Pagination: follow cursors, stop on the last page however it is signalled, never loop."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest

from automations.errors import APIError, PaginationLoop
from automations.incidentio import IncidentFilter
from tests.openapi_conformance import Conformance
from tests.test_client_models import Recorder, incident, make_client, ok


class PagingServer:
    """Serves ``total`` incidents newest first, ``after`` = an incident ID.

    ``meta`` says how pagination_meta.after is reported: "spec" (omitted on the
    last page), "always" (present even on the last page), "empty" (""
    on the last page), "none" (no pagination_meta at all).
    """

    def __init__(self, total: int, meta: str = "spec") -> None:
        self.incidents = [incident(n) for n in range(total, 0, -1)]
        self.meta = meta

    def __call__(self, request: httpx.Request) -> httpx.Response:
        size = int(request.url.params["page_size"])
        after = request.url.params.get("after")
        ids = [i["id"] for i in self.incidents]
        start = ids.index(after) + 1 if after else 0
        page = self.incidents[start : start + size]
        more = start + size < len(self.incidents)
        body: dict[str, Any] = {"incidents": page}
        meta: dict[str, Any] = {"page_size": size, "total_record_count": len(self.incidents)}
        if self.meta == "none":
            return ok(body)
        if page and (more or self.meta == "always"):
            meta["after"] = page[-1]["id"]
        elif self.meta == "empty":
            meta["after"] = ""
        return ok({**body, "pagination_meta": meta})


@pytest.mark.parametrize("meta", ["spec", "always", "empty", "none"])
def test_follows_cursors_to_the_end(openapi: Conformance, meta: str) -> None:
    """All incidents arrive once, in order, however the last page is signalled."""
    server = PagingServer(600, meta)
    # responses are schema-checked once; the requests always are
    recorder = Recorder(openapi, server, check_responses=meta == "spec")
    got = [i.id for i in make_client(recorder).iter_incidents()]
    assert got == [i["id"] for i in server.incidents]
    assert all(("page_size", "250") in p for p in recorder.params)
    afters = [dict(p).get("after") for p in recorder.params]
    assert afters[:3] == [None, server.incidents[249]["id"], server.incidents[499]["id"]]
    # spec/empty: the cursor's absence ends it; always/none: one extra, empty page does
    assert len(recorder.requests) == (3 if meta in ("spec", "empty") else 4)


def test_stops_on_missing_cursor_even_when_page_is_full(openapi: Conformance) -> None:
    """A full page without a cursor is the last one (the meta says so)."""
    recorder = Recorder(openapi, PagingServer(250))
    pages = list(make_client(recorder).iter_incident_pages())
    assert len(pages) == 1
    assert len(pages[0].incidents) == 250
    assert pages[0].after is None
    assert pages[0].total_record_count == 250


def test_stops_on_empty_first_page(openapi: Conformance) -> None:
    """No incidents: one request, no items."""
    recorder = Recorder(openapi, PagingServer(0, "always"))
    assert list(make_client(recorder).iter_incidents(IncidentFilter().mode(one_of="test"))) == []
    assert len(recorder.requests) == 1


def test_page_size_is_bounded(openapi: Conformance) -> None:
    """page_size above 250 (or below 1) is refused before any request."""
    recorder = Recorder(openapi, PagingServer(10))
    client = make_client(recorder)
    for bad in (251, 500, 0, -1):
        with pytest.raises(ValueError, match="page_size"):
            client.iter_incidents(page_size=bad)  # checked when called, not when iterated
    assert recorder.requests == []
    assert len(list(client.iter_incidents(page_size=3))) == 10
    assert len(recorder.requests) == 4


def test_iteration_is_lazy(openapi: Conformance) -> None:
    """Taking the first incidents fetches only the pages needed."""
    recorder = Recorder(openapi, PagingServer(1000), check_responses=False)
    first = list(itertools.islice(make_client(recorder).iter_incidents(), 10))
    assert len(first) == 10
    assert len(recorder.requests) == 1


def test_repeated_cursor_raises_instead_of_looping(openapi: Conformance) -> None:
    """A server that ignores ``after`` would loop forever; PaginationLoop stops it."""

    def ignores_after(request: httpx.Request) -> httpx.Response:
        page = [incident(n) for n in range(1, 251)]
        return ok(
            {"incidents": page, "pagination_meta": {"page_size": 250, "after": page[-1]["id"]}}
        )

    recorder = Recorder(openapi, ignores_after, check_responses=False)
    with pytest.raises(PaginationLoop, match="twice") as info:
        list(make_client(recorder).iter_incidents())
    assert isinstance(info.value, APIError)
    assert info.value.route == "/v2/incidents"
    assert len(recorder.requests) == 2


def test_cursor_cycle_is_detected(openapi: Conformance) -> None:
    """A cursor that comes back after other pages is caught too (A -> B -> A)."""
    cursors = iter(["A", "B", "A", "B"])

    def cycling(request: httpx.Request) -> httpx.Response:
        return ok(
            {
                "incidents": [incident(1)],
                "pagination_meta": {"page_size": 250, "after": next(cursors)},
            }
        )

    recorder = Recorder(openapi, cycling)
    with pytest.raises(PaginationLoop):
        list(make_client(recorder).iter_incident_pages())
    assert len(recorder.requests) == 3
