"""Run the sandbox with uvicorn: in the foreground (``serve``) or in a thread (tests).

uvicorn's own ``Date`` header is turned off so the app's (the sandbox clock's)
is the only one. A dropped connection is the app returning mid-response;
uvicorn logs that as an error, so that one message is filtered out.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import uvicorn

from automations.closing import Closing
from automations.sandbox.app import create_app
from automations.sandbox.state import SandboxConfig, SandboxState
from automations.sandbox.webhook_sender import WebhookTarget

_DROP_MESSAGE = "ASGI callable returned without completing response."


class _QuietDrops(logging.Filter):
    """Hide uvicorn's complaint about the responses the drop fault abandons on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _DROP_MESSAGE


def _quiet_drops() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


def _uvicorn_config(app: Any, log_level: str, **extra: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        date_header=False,
        server_header=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
        **extra,
    )


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    api_key: str = "sandbox",
    seed: int = 1,
    incidents: int = 200,
    rate_limit_per_minute: int = 1200,
    large_page_size: str = "clamp",
    webhook: WebhookTarget | None = None,
) -> None:
    """Serve until interrupted (``automations sandbox``); ``webhook``: send events there."""
    config = SandboxConfig(
        api_key=api_key,
        seed=seed,
        incidents=incidents,
        rate_limit_per_minute=rate_limit_per_minute,
        large_page_size=large_page_size,
    )
    _quiet_drops()
    app = create_app(config, webhook)
    try:
        uvicorn.Server(_uvicorn_config(app, "info", host=host, port=port)).run()
    finally:
        app.state.sandbox.webhooks.close()


class SandboxThread(Closing):
    """A sandbox on 127.0.0.1 in a background thread; port 0 picks a free port."""

    def __init__(
        self,
        config: SandboxConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        webhook: WebhookTarget | None = None,
    ) -> None:
        self.config = config or SandboxConfig()
        self.app = create_app(self.config, webhook)
        self._host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def base_url(self) -> str:
        if self._socket is None:
            raise RuntimeError("the sandbox is not running; call start() first")
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self, timeout: float = 10.0) -> SandboxThread:
        _quiet_drops()
        # An explicit IPPROTO_TCP matters: asyncio only disables Nagle on accepted sockets
        # whose proto says TCP, and without that every keep-alive response waits ~40 ms.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((self._host, self._port))
        self._server = uvicorn.Server(_uvicorn_config(self.app, "warning"))
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="automations-sandbox",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server, self._thread, self._socket = None, None, None
        self.state.webhooks.close()

    @property
    def state(self) -> SandboxState:
        """The running sandbox's state (its store, clock, webhook sender...)."""
        state: SandboxState = self.app.state.sandbox
        return state

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> SandboxThread:
        return self.start()
