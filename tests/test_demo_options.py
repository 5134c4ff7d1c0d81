"""`automations demo --metrics-port N` and `make sandbox PORT=... HOST=...`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from automations.config import load_config
from automations.demo import demo_config
from tests.digest_support import free_port
from tests.engine_harness import REPO

DEMO = REPO / "config" / "demo.toml"


def test_demo_serves_metrics_on_the_port_given(tmp_path: Path) -> None:
    """The real demo: /metrics answers on --metrics-port, not on the file's 9108."""
    port = free_port()
    command = [sys.executable, "-m", "automations", "demo", "--config", str(DEMO)]
    with subprocess.Popen(
        [*command, "--metrics-port", str(port), "--duration", "2", "--incidents", "20"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as demo:
        assert demo.stdout is not None
        lines, metrics = [], None
        for line in demo.stdout:
            lines.append(line)
            if metrics is None and (found := re.search(r"(http://\S+)/metrics", line)):
                metrics = httpx.get(f"{found.group(1)}/metrics", timeout=5)
        demo.wait(timeout=30)
    story = "".join(lines)

    assert demo.returncode == 0, story
    assert f"http://127.0.0.1:{port}/metrics" in story
    assert metrics is not None
    assert metrics.status_code == 200
    assert "automations_" in metrics.text


@pytest.mark.parametrize("port", [0, 9999, None])
def test_demo_metrics_port_overrides_the_file(tmp_path: Path, port: int | None) -> None:
    """The option turns /metrics on at that port (0: any free one); without it, the file rules."""
    text = DEMO.read_text().replace("enabled = true", "enabled = false")
    (tmp_path / "demo.toml").write_text(text)
    config = load_config(tmp_path / "demo.toml")

    ready = demo_config(
        config, base_url="http://127.0.0.1:1", state_dir=tmp_path, smtp_port=1, metrics_port=port
    )

    assert ready.server.enabled is (port is not None)
    if port is not None:
        assert ready.server.port == port


def _make_sandbox(*args: str, **environ: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "HOST", "MAKEFLAGS")}
    env.update(environ)
    result = subprocess.run(
        ["make", "-n", "sandbox", *args], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_sandbox_takes_port_and_host() -> None:
    """`make sandbox PORT=9999 HOST=0.0.0.0` passes both on; plain `make sandbox` is as before,
    even where the shell exports HOST (zsh) or PORT."""
    assert "automations sandbox --host 0.0.0.0 --port 9999" in _make_sandbox(
        "PORT=9999", "HOST=0.0.0.0"
    )
    default = "automations sandbox --host 127.0.0.1 --port 8765"
    assert default in _make_sandbox()
    assert default in _make_sandbox(HOST="build-host-7", PORT="80")
