"""The error envelope every non-2xx answer uses (docs/incident-io-api.md section 6).

``{type, status, request_id, errors:[{code, message, source?{field, pointer}}], rate_limit?}``.
Handlers raise ``SandboxErrorResponse``; the request pipeline renders it with the
request's ID. (Not the product's ``automations.errors.APIError``: this is the answer the
simulated API gives, that one is what the client makes of it.)

A ``source`` always carries both ``field`` and ``pointer`` (section 0: generated
clients raise without either). ``pointer`` is a JSON pointer to the offending
part of the request: ``/incident/severity_id`` inside an edit's ``incident``,
``/page_size`` for a query parameter (its name, escaped: the docs do not say
what the real API points at for a query string).
"""

from __future__ import annotations

from typing import Any, TypeVar

from automations.sandbox.model import JSON

T = TypeVar("T")

# The envelope ``type`` for each status we emit (our mapping; section 6 lists the names).
TYPE_OF_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "resource_forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    429: "rate_limit_reached",
}


class SandboxErrorResponse(Exception):
    """The error envelope the simulated API answers with, raised anywhere below the route
    handler (a 4xx or 5xx the product then reads as an APIError)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        pointer: str | None = None,
        type_: str | None = None,
        rate_limit: JSON | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.pointer = pointer if pointer is not None or field is None else json_pointer(field)
        self.type = type_ or TYPE_OF_STATUS.get(status, "api_error")
        self.rate_limit = rate_limit
        self.headers = headers or {}

    def envelope(self, request_id: str) -> JSON:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["source"] = {"field": self.field, "pointer": self.pointer or ""}
        body: JSON = {
            "type": self.type,
            "status": self.status,
            "request_id": request_id,
            "errors": [error],
        }
        if self.rate_limit is not None:
            body["rate_limit"] = self.rate_limit
        return body


def json_pointer(*parts: str) -> str:
    """RFC 6901: ``/a/b`` with ``~`` and ``/`` inside a part escaped."""
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


def within(error: SandboxErrorResponse, *parents: str) -> SandboxErrorResponse:
    """The same error pointing inside ``parents`` (e.g. an edit's ``incident`` object)."""
    if error.field is not None:
        error.pointer = json_pointer(*parents) + (error.pointer or "")
    return error


def invalid(field: str, message: str, code: str = "invalid_value") -> SandboxErrorResponse:
    """422 validation_error naming the offending field."""
    return SandboxErrorResponse(422, code, message, field=field)


def required(field: str, message: str | None = None) -> SandboxErrorResponse:
    return SandboxErrorResponse(422, "is_required", message or f"{field} is required", field=field)


def body_object(payload: Any) -> JSON:
    """The request body as an object: none is ``{}`` (so the missing fields are named), else 400."""
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise SandboxErrorResponse(400, "invalid_body", "The request body must be a JSON object")
    return payload


def not_found(what: str, ref: str) -> SandboxErrorResponse:
    return SandboxErrorResponse(404, "not_found", f"No {what} found with ID {ref!r}")


def found(value: T | None, what: str, ref: str) -> T:
    """``value``, looked up by ``ref``; the API's 404 naming ``what`` when there is none."""
    if value is None:
        raise not_found(what, ref)
    return value
