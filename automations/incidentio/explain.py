"""API failures a person can act on: a refused key, an API that cannot be reached.

A 401 says which variable the key came from (never the key); a 403 says which
incident.io permission the refused call needs, mapping the routes this product
uses to the permissions the README's "The API key" section lists, and quotes
the API's own explanation. Both say where keys are made.
"""

from __future__ import annotations

from automations.errors import APIAccessDenied, APIError

VIEW = "View data"
EDIT = "Edit incidents"
CREATE = "Create incidents"
PRIVATE = "View all incidents, including private ones"
NEEDED = f"{VIEW} and {EDIT}"  # what `run` and `once` need (README: The API key)
WHERE_KEYS = "in the incident.io dashboard under Settings -> API keys"

# (method, route) -> permission; every GET this product makes needs View data.
PERMISSIONS = {
    ("POST", "/v2/incidents/{id}/actions/edit"): EDIT,
    ("POST", "/v2/incidents"): CREATE,
}


def permission_for(method: str | None, route: str | None, said: str = "") -> str:
    """The permission a call needs; private incidents need more than View data."""
    permission = PERMISSIONS.get((method or "", route or ""), VIEW)
    if permission == VIEW and "private" in said.lower():
        return PRIVATE
    return permission


def explain_access_denied(exc: APIAccessDenied, key_source: str) -> str:
    """What a 401 or 403 means and what to do, naming the key's variable, never the key."""
    call = f"{exc.method} {exc.route}" if exc.method else "a request"
    said = "; ".join(e.message for e in exc.errors if e.message)
    code = " ".join(part for part in (exc.type, *(e.code for e in exc.errors)) if part)
    answer = f"HTTP {exc.status}" + (f" {code}" if code else "") + (f': "{said}"' if said else "")
    request = f" (request_id {exc.request_id})" if exc.request_id else ""
    if exc.status == 403:
        permission = permission_for(exc.method, exc.route, said)
        return (
            f"incident.io refused {call} ({answer}){request}: the API key from {key_source} "
            f"lacks the {permission!r} permission. Add it to the key, or create a key with "
            f"it, {WHERE_KEYS} (this product needs {NEEDED})."
        )
    return (
        f"incident.io did not accept the API key from {key_source} on {call} ({answer})"
        f"{request}: it is mistyped, revoked or from another organisation. Create a key "
        f"{WHERE_KEYS} with {NEEDED}, and put it in INCIDENT_IO_API_KEY or in a file named "
        "by INCIDENT_IO_API_KEY_FILE."
    )


def explain_unavailable(exc: APIError) -> str:
    """An API that did not answer usably: where it was looked for, and how hard we tried."""
    where = exc.base_url or "the configured address"
    tried = (
        f"; gave up after {exc.attempts} attempt{'s' if exc.attempts != 1 else ''} "
        f"in {exc.elapsed:.1f}s"
        if exc.attempts
        else ""
    )
    if exc.status is None:
        return (
            f"cannot reach the incident.io API at {where} (incident_io.base_url): {exc}{tried}. "
            "Check base_url and the network, or try again later."
        )
    return (
        f"the incident.io API at {where} (incident_io.base_url) is not answering normally: "
        f"{exc}{tried}. Try again later."
    )
