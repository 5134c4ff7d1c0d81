"""`automations run` in a subprocess: the real daemon, its log lines collected as they come."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from tests.engine_harness import Harness


class DaemonProcess:
    """The daemon on the harness's config; its stderr is searched for secrets after the test."""

    def __init__(
        self,
        harness: Harness,
        *,
        wrapper: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``wrapper`` runs the daemon through another command (e.g. ``unshare``); ``env``
        is laid over the harness's environment, after it (so a *_FILE it sets stays)."""
        command = [sys.executable, "-m", "automations", "run", "--config", str(harness.config_path)]
        self.harness = harness
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [*wrapper, *command],
            env={**harness.env(), **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.arrived: list[float] = []  # time.monotonic() as each line came, for timings
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.arrived.append(time.monotonic())
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, done: Callable[[], bool], what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert self.process.poll() is None, "the daemon exited:\n" + self.log
            assert time.monotonic() < deadline, f"no {what} in:\n" + self.log
            time.sleep(0.05)

    def wait_for_line(self, text: str, after: int = 0, timeout: float = 20) -> str:
        self.wait_for(lambda: any(text in line for line in self.lines[after:]), repr(text), timeout)
        return next(line for line in self.lines[after:] if text in line)

    def wait_exit(self, timeout: float = 30) -> int:
        """The exit code; the log is complete afterwards."""
        code = self.process.wait(timeout=timeout)
        self._close_pipe()
        self.harness.outputs.append(self.log)
        return code

    def _close_pipe(self) -> None:
        """Once the reader has met the end of the pipe (the process is gone), close it."""
        self._reader.join(timeout=5)
        # Closing it under a reader still blocked on it would wait for that read.
        if not self._reader.is_alive() and self.process.stderr is not None:
            self.process.stderr.close()

    def stop(self, timeout: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def timed_stop(self, timeout: float = 30) -> tuple[int, float]:
        """SIGTERM; the exit code and the seconds until the process was gone."""
        asked = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        took = time.monotonic() - asked
        self.wait_exit()
        return code, took

    def kill(self) -> None:
        """Cleanup after a failed test: never leave a daemon behind."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._close_pipe()
