"""Fault injection: what the network and the API do on a bad day.

Two kinds, set together by ``POST /_sandbox/faults`` (which replaces the
previous setting) and limited to API paths starting with one of ``paths``:

- queued faults (``next``), consumed one per matching API request, in order
  (``forbidden`` answers 403 to an authenticated request, as incident.io does when
  the key lacks a permission; the real body's wording is undocumented, so the
  ``message`` can be set);
- probabilistic faults (``error_rate``, ``drop_rate``, ``latency_seconds``,
  ``rate_limit_storm``) drawn from a seeded RNG, used when the queue is empty.

A drop sends the status line and a Content-Length, part of the body, and
then ends the ASGI call without finishing it, so uvicorn closes the socket
and an HTTP client sees a broken connection (httpx ``RemoteProtocolError``).
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Receive, Scope, Send

from automations.sandbox.model import JSON

MALFORMED_BODIES = ("invalid_json", "html", "missing_fields", "unknown_enum")
FORBIDDEN_MESSAGE = "The API key does not have permission to perform this action"
RETRY_AFTER_FORMS = ("seconds", "http-date")
UNKNOWN_CATEGORY = "stabilising"


class FaultConfigError(ValueError):
    """The faults payload is not understood; the message says which part."""


@dataclass(frozen=True)
class Fault:
    kind: str  # status | rate_limit | drop | latency | malformed | forbidden
    status: int = 503
    retry_after: float = 1.0
    form: str = "seconds"
    seconds: float = 0.0
    body: str = "invalid_json"
    when: str = "before"  # drop: before or after the request is processed
    message: str = FORBIDDEN_MESSAGE  # forbidden: the error's message


@dataclass(frozen=True)
class Decision:
    """What happens to one request: an optional delay, then at most one fault."""

    latency: float = 0.0
    fault: Fault | None = None


def _number(spec: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise FaultConfigError(f"{key} must be a number between {lo} and {hi}, got {value!r}")
    return float(value)


def _choice(spec: dict[str, Any], key: str, default: str, choices: tuple[str, ...]) -> str:
    value = spec.get(key, default)
    if value not in choices:
        raise FaultConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def parse_fault(spec: Any) -> Fault:
    if not isinstance(spec, dict):
        raise FaultConfigError(f"each queued fault must be an object, got {spec!r}")
    kind = spec.get("kind")
    if kind == "status":
        return Fault("status", status=int(_number(spec, "status", 503, 400, 599)))
    if kind == "rate_limit":
        return Fault(
            "rate_limit",
            retry_after=_number(spec, "retry_after", 1, 0, 3600),
            form=_choice(spec, "form", "seconds", RETRY_AFTER_FORMS),
        )
    if kind == "drop":
        return Fault("drop", when=_choice(spec, "when", "before", ("before", "after")))
    if kind == "latency":
        return Fault("latency", seconds=_number(spec, "seconds", 0.1, 0, 60))
    if kind == "malformed":
        return Fault("malformed", body=_choice(spec, "body", "invalid_json", MALFORMED_BODIES))
    if kind == "forbidden":
        message = spec.get("message", FORBIDDEN_MESSAGE)
        if not isinstance(message, str) or not message:
            raise FaultConfigError(f"message must be a non-empty string, got {message!r}")
        return Fault("forbidden", status=403, message=message)
    raise FaultConfigError(
        f"unknown fault kind {kind!r}; one of status, rate_limit, drop, latency, malformed, "
        "forbidden"
    )


@dataclass
class FaultPlan:
    """The active faults. Empty by default; the RNG is seeded so runs repeat."""

    rng: random.Random
    queue: deque[Fault] = field(default_factory=deque)
    paths: tuple[str, ...] = ()
    error_rate: float = 0.0
    error_status: int = 503
    drop_rate: float = 0.0
    latency_seconds: float = 0.0
    storm_until: float = 0.0  # time.monotonic() deadline
    storm_form: str = "seconds"

    @classmethod
    def from_payload(cls, payload: Any, seed: int) -> FaultPlan:
        if not isinstance(payload, dict):
            raise FaultConfigError("the faults payload must be a JSON object")
        known = {
            "next",
            "paths",
            "error_rate",
            "error_status",
            "drop_rate",
            "latency_seconds",
            "rate_limit_storm",
            "seed",
        }
        unknown = sorted(set(payload) - known)
        if unknown:
            raise FaultConfigError(f"unknown fault settings: {', '.join(unknown)}")
        queued = payload.get("next", [])
        if not isinstance(queued, list):
            raise FaultConfigError("next must be a list of faults")
        paths = payload.get("paths") or ()
        if isinstance(paths, str):
            paths = (paths,)
        if not all(isinstance(p, str) for p in paths):
            raise FaultConfigError("paths must be a string or a list of path prefixes")
        plan = cls(
            rng=random.Random(f"sandbox:faults:{payload.get('seed', seed)}"),
            queue=deque(parse_fault(spec) for spec in queued),
            paths=tuple(paths),
            error_rate=_number(payload, "error_rate", 0, 0, 1),
            error_status=int(_number(payload, "error_status", 503, 400, 599)),
            drop_rate=_number(payload, "drop_rate", 0, 0, 1),
            latency_seconds=_number(payload, "latency_seconds", 0, 0, 60),
        )
        storm = payload.get("rate_limit_storm")
        if storm is not None:
            if not isinstance(storm, dict):
                raise FaultConfigError("rate_limit_storm must be an object")
            plan.storm_until = time.monotonic() + _number(storm, "seconds", 3, 0, 3600)
            plan.storm_form = _choice(storm, "retry_after_form", "seconds", RETRY_AFTER_FORMS)
        return plan

    def describe(self) -> JSON:
        return {
            "next": [_describe(f) for f in self.queue],
            "paths": list(self.paths),
            "error_rate": self.error_rate,
            "error_status": self.error_status,
            "drop_rate": self.drop_rate,
            "latency_seconds": self.latency_seconds,
            "rate_limit_storm_remaining_seconds": max(0.0, self.storm_until - time.monotonic()),
        }

    def decide(self, path: str) -> Decision:
        """The fault for this API request; consumes a queued fault if one applies."""
        if self.paths and not path.startswith(self.paths):
            return Decision()
        if self.queue:
            queued = self.queue.popleft()
            if queued.kind == "latency":
                return Decision(latency=queued.seconds)
            return Decision(latency=self.latency_seconds, fault=queued)
        remaining = self.storm_until - time.monotonic()
        if remaining > 0:
            storm = Fault("rate_limit", retry_after=math.ceil(remaining), form=self.storm_form)
            return Decision(self.latency_seconds, storm)
        fault: Fault | None = None
        if self.drop_rate and self.rng.random() < self.drop_rate:
            fault = Fault("drop")
        elif self.error_rate and self.rng.random() < self.error_rate:
            fault = Fault("status", status=self.error_status)
        return Decision(self.latency_seconds, fault)


def _describe(fault: Fault) -> JSON:
    details: dict[str, JSON] = {
        "status": {"status": fault.status},
        "rate_limit": {"retry_after": fault.retry_after, "form": fault.form},
        "drop": {"when": fault.when},
        "latency": {"seconds": fault.seconds},
        "malformed": {"body": fault.body},
        "forbidden": {"message": fault.message},
    }
    return {"kind": fault.kind, **details[fault.kind]}


def malform(kind: str, body: JSON) -> tuple[bytes, str]:
    """The broken body for a ``malformed`` fault, and its content type.

    ``missing_fields`` removes ``id`` from every record in the answer (or the
    first top-level key when there are no records); ``unknown_enum`` gives every
    status a category the client has never seen. Both keep the right shape
    otherwise, so only tolerant (or strict) parsing is being tested.
    """
    if kind == "invalid_json":
        text = json.dumps(body)
        return text[: max(1, len(text) // 2)].encode(), "application/json"
    if kind == "html":
        page = "<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"
        return page.encode(), "text/html; charset=utf-8"
    changed = copy.deepcopy(body)
    records = _records(changed)
    if kind == "missing_fields":
        if records:
            for record in records:
                record.pop("id", None)
        elif changed:
            changed.pop(next(iter(changed)))
    else:
        for record in records:
            status = record.get("incident_status") or record.get("new_incident_status")
            if isinstance(status, dict):
                status["category"] = UNKNOWN_CATEGORY
            elif "category" in record:
                record["category"] = UNKNOWN_CATEGORY
    return json.dumps(changed).encode(), "application/json"


def _records(body: JSON) -> list[JSON]:
    for value in body.values():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return value
        if isinstance(value, dict) and "id" in value:
            return [value]
    return []


class DroppedResponse:
    """Starts a response it never finishes, so the server aborts the connection."""

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    *self.headers,
                    (b"content-type", b"application/json"),
                    (b"content-length", b"4096"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b'{"incidents": [', "more_body": True})
