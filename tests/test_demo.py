"""`automations demo`: escalations, closures and a digest in ./outbox/, metrics, a clean stop."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx

from automations.clock import host_now

REPO = Path(__file__).resolve().parent.parent


def test_the_demo_tells_the_story_writes_a_digest_and_stops_cleanly(tmp_path: Path) -> None:
    # The demo sends a digest after its first cycle, then on its cron (every minute). Here the
    # cron is moved to half a day from now, so no run of this test can see a second digest,
    # whatever the time of day.
    later = host_now() + timedelta(hours=12)
    config = (REPO / "config" / "demo.toml").read_text()
    config = config.replace('cron = "* * * * *"', f'cron = "{later.minute} {later.hour} * * *"')
    config = config.replace('timezone = "Europe/London"', 'timezone = "UTC"')
    config = config.replace("port = 9108", "port = 0")
    (tmp_path / "demo.toml").write_text(config)
    command = [sys.executable, "-m", "automations", "demo", "--config", "demo.toml"]
    demo = subprocess.Popen(
        # A safety net only: the test stops it (SIGTERM, as Ctrl-C would) once it has seen
        # the first cycle, the digest and a webhook; a stuck demo still ends.
        [*command, "--duration", "90"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    lines: list[str] = []
    metrics = ""
    stopping = False
    for line in demo.stdout:
        lines.append(line)
        if "cycle every" in line and not metrics:
            url = next(
                m.group(1) for text in lines if (m := re.search(r"(http://\S+)/metrics", text))
            )
            metrics = httpx.get(f"{url}/metrics", timeout=5).text
        seen = "".join(lines)
        if not stopping and metrics and "mail: Incidents" in seen and "webhook: " in seen:
            demo.send_signal(signal.SIGTERM)
            stopping = True
    demo.wait(timeout=30)
    story = "".join(lines)

    assert demo.returncode == 0, story
    assert "severity Minor -> Major" in story
    assert "Documenting -> Closed" in story
    assert "mail: Incidents" in story
    assert "demo stopped" in story
    assert "Traceback" not in story
    outbox = tmp_path / "outbox"
    assert {p.suffix for p in outbox.iterdir() if p.is_file()} == {".eml", ".html"}
    # Each escalation is announced: a mail (beside the digest) and a verified webhook.
    assert re.search(r"mail: INC-\d+ raised to Major: ", story), story
    assert "webhook: action.applied INC-" in story
    hooks = [json.loads(p.read_text()) for p in (outbox / "webhooks").glob("*.json")]
    assert hooks
    assert {hook["type"] for hook in hooks} == {"action.applied"}
    applied = re.findall(
        r'automations_actions_total\{outcome="applied",rule="[^"]+"\} (\d+)', metrics
    )
    assert sum(float(n) for n in applied) > 0, metrics
    assert not list(tmp_path.glob("*.db")), "the demo's ledger lives in a temporary directory"
