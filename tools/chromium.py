"""Headless Chromium driven over the DevTools protocol on a pipe: no extra dependency.

Why not the ``chromium --screenshot`` command line: its window is at least 500 px
wide (a 375 px page measures 500), it cannot emulate ``prefers-color-scheme``
except for the whole browser, and it shoots the window, not the full page. The
DevTools protocol does all three exactly (``Emulation.setDeviceMetricsOverride``,
``Emulation.setEmulatedMedia``, a viewport as tall as the page), and
``--remote-debugging-pipe`` speaks it over file descriptors 3 and 4 with
NUL-separated JSON, so the standard library is enough: no websocket client, no
Playwright with its own Node.js driver.

The flags are the ones that work on a closed network (no background fetches,
no sandbox as root) with a fresh profile each start.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT = 30.0

# Run in the page after load: what the layout measures (a horizontal scroll, the full height,
# whether dark mode matched, the background actually painted). Text that reaches past the
# right edge is named with its element, its section (the <h2> before it) and its widest line.
MEASURE = r"""(() => {
  const root = document.documentElement;
  const card = document.querySelector('.card');
  const headings = Array.from(document.querySelectorAll('h2'));
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) if (walker.currentNode.data.trim()) texts.push(walker.currentNode);
  // The widest line box of a text, and whether any line box reaches past the right edge.
  const lines = text => {
    const range = document.createRange();
    range.selectNodeContents(text);
    return Array.from(range.getClientRects());
  };
  const past = text => lines(text).some(r => r.right > window.innerWidth + 0.5);
  const widest = text => Math.max(...lines(text).map(r => r.width));
  // Short words split across lines: overflow-wrap:anywhere lets a squeezed table column
  // break "15" into "1" and "5"; only long unbroken names should ever break.
  const splitWords = text => Array.from(text.data.matchAll(/[^\s\-\/]{1,12}(?=[\s\-\/]|$)/g))
    .filter(match => match.index === 0 || /[\s\-\/]/.test(text.data[match.index - 1]))
    .filter(match => {
      const range = document.createRange();
      range.setStart(text, match.index);
      range.setEnd(text, match.index + match[0].length);
      return new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top))).size > 1;
    })
    .map(match => match[0]);
  const section = el => {
    const before = headings.filter(
      h => h.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING);
    return before.length ? before[before.length - 1].textContent.trim() : '(top)';
  };
  return {
    scrollWidth: root.scrollWidth,
    innerWidth: window.innerWidth,
    scrollHeight: root.scrollHeight,
    dark: matchMedia('(prefers-color-scheme: dark)').matches,
    bodyBackground: getComputedStyle(document.body).backgroundColor,
    cardBackground: card ? getComputedStyle(card).backgroundColor : null,
    // Widest first: an unbroken word is the culprit; the texts after it only flowed into
    // the room it made.
    wider: texts.filter(past).sort((a, b) => widest(b) - widest(a)).slice(0, 5).map(text => {
      const el = text.parentElement;
      return section(el) + ': ' + el.tagName.toLowerCase()
        + (el.className ? '.' + el.className : '') + ' "' + text.data.trim().slice(0, 40)
        + '" (' + Math.round(widest(text)) + ' px)';
    }),
    split: texts.flatMap(text => splitWords(text).map(word => {
      const el = text.parentElement;
      return section(el) + ': ' + el.tagName.toLowerCase()
        + (el.className ? '.' + el.className : '') + ' "' + word + '"';
    })).slice(0, 5),
  };
})()"""


class ChromiumError(RuntimeError):
    """Chromium is missing, did not start, or answered a command with an error."""


def find_chromium() -> str | None:
    """The browser to drive: $CHROMIUM, else the first of CANDIDATES on the PATH."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit
    for name in CANDIDATES:
        if found := shutil.which(name):
            return found
    return None


@dataclass(frozen=True)
class Measure:
    """What the page's layout measured at one width and colour scheme."""

    scroll_width: int
    inner_width: int
    scroll_height: int
    dark: bool
    body_background: str
    card_background: str | None
    # Up to 5 texts past the right edge, widest first: 'section: tag.class "text" (N px)'.
    wider: tuple[str, ...]
    # Up to 5 short words (12 characters at most) broken across two lines: 'section: tag "word"'.
    split: tuple[str, ...]

    @property
    def scrolls_sideways(self) -> bool:
        return self.scroll_width > self.inner_width


class Browser:
    """One headless Chromium; ``page`` opens an HTML file at a width and colour scheme."""

    def __init__(self, executable: str | None = None, timeout: float = TIMEOUT) -> None:
        found = executable or find_chromium()
        if found is None:
            raise ChromiumError(
                "no Chromium found: install Debian's package (apt-get install chromium) "
                "or set CHROMIUM to the browser's path"
            )
        self.executable = found
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="automations-chromium-")
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    # -- process ------------------------------------------------------------------------

    def start(self) -> Browser:
        # Chromium reads commands on fd 3 and answers on fd 4. Our ends are moved above 4
        # first (bash, not dash: dash takes one-digit descriptors only), so the redirections
        # cannot overwrite one another.
        to_browser, self._send_fd = _high(os.pipe())
        self._recv_fd, from_browser = _high(os.pipe())
        command = [
            "bash",
            "-c",
            f'exec "$@" 3<&{to_browser} 4>&{from_browser} {to_browser}<&- {from_browser}>&-',
            "chromium",
            self.executable,
            *FLAGS,
            f"--user-data-dir={self._profile.name}",
            "about:blank",
        ]
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(to_browser, from_browser),
        )
        os.close(to_browser)
        os.close(from_browser)
        return self

    def close(self) -> None:
        if self._process is not None:
            # The browser may exit before it answers: either way it is closing.
            with suppress(ChromiumError, OSError):
                self._call("Browser.close")
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
            self._process = None
            os.close(self._send_fd)
            os.close(self._recv_fd)
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- pages --------------------------------------------------------------------------

    @contextmanager
    def page(self, html: Path, *, width: int, dark: bool) -> Iterator[Page]:
        """A new tab ``width`` CSS px wide (scale 1), light or dark, with ``html`` loaded."""
        target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, session, width)
        try:
            page.call("Page.enable")
            page.resize(800)
            scheme = "dark" if dark else "light"
            page.call(
                "Emulation.setEmulatedMedia",
                {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
            )
            page.call("Page.navigate", {"url": html.resolve().as_uri()})
            self._wait_event("Page.loadEventFired", session)
            yield page
        finally:
            self._call("Target.closeTarget", {"targetId": target})

    # -- protocol -----------------------------------------------------------------------

    def _call(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._send_fd, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise ChromiumError(f"{method}: {reply['error'].get('message')}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self._events.append(reply)

    def _wait_event(self, method: str, session: str) -> None:
        while True:
            for index, event in enumerate(self._events):
                if event["method"] == method and event.get("sessionId") == session:
                    del self._events[: index + 1]
                    return
            self._events.clear()
            reply = self._read()
            if "method" in reply:
                self._events.append(reply)

    def _read(self) -> dict[str, Any]:
        """The next NUL-terminated message, or ChromiumError after ``timeout`` of silence."""
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._recv_fd], [], [], max(left, 0))
            if not ready:
                raise ChromiumError(f"Chromium did not answer within {self.timeout:g}s")
            chunk = os.read(self._recv_fd, 1 << 16)
            if not chunk:
                raise ChromiumError("Chromium exited")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message


class Page:
    """One tab: measure it, or shoot it whole."""

    def __init__(self, browser: Browser, session: str, width: int) -> None:
        self.browser = browser
        self.session = session
        self.width = width

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.browser._call(method, params, self.session)

    def resize(self, height: int) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def evaluate(self, expression: str) -> Any:
        reply = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in reply:
            raise ChromiumError(f"script failed: {reply['exceptionDetails'].get('text')}")
        return reply["result"].get("value")

    def measure(self) -> Measure:
        raw = self.evaluate(MEASURE)
        return Measure(
            scroll_width=raw["scrollWidth"],
            inner_width=raw["innerWidth"],
            scroll_height=raw["scrollHeight"],
            dark=raw["dark"],
            body_background=raw["bodyBackground"],
            card_background=raw["cardBackground"],
            wider=tuple(raw["wider"]),
            split=tuple(raw["split"]),
        )

    def screenshot(self) -> bytes:
        """A PNG of the whole page: the viewport is made as tall as the content first."""
        self.resize(self.measure().scroll_height)
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        return base64.b64decode(data)


def _high(pair: tuple[int, int]) -> tuple[int, int]:
    """Both descriptors moved to numbers above 4 (close-on-exec, as os.pipe makes them)."""
    moved = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in pair)
    for fd in pair:
        os.close(fd)
    return moved[0], moved[1]
