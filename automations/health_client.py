"""Ask a running daemon's ``/healthz``, as ``automations healthcheck`` (Docker's HEALTHCHECK) does.

The standard library's urllib, not httpx: Docker runs this every 30 seconds,
so it should start fast. Whatever answers (the daemon, another program on
the port, nothing at all) becomes one verdict with a one-line reason.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request

TIMEOUT = 4.0  # seconds; the Dockerfile's HEALTHCHECK allows 5
MAX_BODY = 64 * 1024
ANY_ADDRESS = {"", "0.0.0.0", "::"}  # listening everywhere: ask over loopback


def health_url(host: str, port: int) -> str:
    if host in ANY_ADDRESS:
        host = "127.0.0.1"  # "::" listens on IPv4 too (dual stack)
    return f"http://[{host}]:{port}/healthz" if ":" in host else f"http://{host}:{port}/healthz"


def ask(host: str, port: int, timeout: float = TIMEOUT) -> tuple[bool, str]:
    """(healthy, reason): healthy only for a 200 carrying the daemon's ``{"ok": true}``."""
    url = health_url(host, port)
    try:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                status, body = response.status, response.read(MAX_BODY)
        except urllib.error.HTTPError as exc:  # 503 and friends still carry a body
            with exc:
                status, body = exc.code, exc.read(MAX_BODY)
    except urllib.error.URLError as exc:
        return False, f"{url} did not answer ({_describe(exc.reason)})"
    except http.client.RemoteDisconnected:
        return False, f"{url} closed the connection without an answer"
    except http.client.HTTPException as exc:
        return False, (
            f"{url} answered, but not HTTP ({type(exc).__name__}): "
            "is another program listening on that port?"
        )
    except OSError as exc:
        return False, f"{url} did not answer ({_describe(exc)})"
    verdict = _verdict(body)
    if verdict is None:
        return False, (
            f"{url} answered {status} without the health JSON: "
            "is another program listening on that port?"
        )
    ok, reason = verdict
    return ok and status == 200, reason


def _verdict(body: bytes) -> tuple[bool, str] | None:
    """The daemon's ``{"ok": bool, "reason": str}``, or None for anything else."""
    try:
        data = json.loads(body)
    except ValueError:  # not JSON, not UTF-8
        return None
    if not isinstance(data, dict):
        return None
    ok, reason = data.get("ok"), data.get("reason")
    if not isinstance(ok, bool) or not isinstance(reason, str):
        return None
    return ok, " ".join(reason.split())  # one line, whatever it holds


def _describe(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__
