"""`automations demo`: escalations, closures, a digest and a webhook-driven reaction in ./outbox/,
metrics, a clean stop."""

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
METRICS_URL = r"(http://\S+)/metrics"


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
    with subprocess.Popen(
        # A safety net only: the test stops it (SIGTERM, as Ctrl-C would) once it has seen
        # the first cycle, the digest and a webhook; a stuck demo still ends.
        [*command, "--duration", "90"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as demo:
        assert demo.stdout is not None
        lines: list[str] = []
        metrics = metrics_after = ""
        stopping = False
        for line in demo.stdout:
            lines.append(line)
            if "cycle every" in line and not metrics:
                url = next(m.group(1) for text in lines if (m := re.search(METRICS_URL, text)))
                metrics = httpx.get(f"{url}/metrics", timeout=5).text
            seen = "".join(lines)
            done = ('mail: Daily digest "daily"', "webhook: ", "reaction: ")
            if not stopping and metrics and all(text in seen for text in done):
                url = next(m.group(1) for text in lines if (m := re.search(METRICS_URL, text)))
                metrics_after = httpx.get(f"{url}/metrics", timeout=5).text
                demo.send_signal(signal.SIGTERM)
                stopping = True
        demo.wait(timeout=30)
    story = "".join(lines)

    assert demo.returncode == 0, story
    assert "severity Minor -> Major" in story
    assert "Documenting -> Closed" in story
    assert 'mail: Daily digest "daily" · ' in story
    assert "demo stopped" in story
    assert "Traceback" not in story
    outbox = tmp_path / "outbox"
    assert {p.suffix for p in outbox.iterdir() if p.is_file()} == {".eml", ".html"}
    pages = [p.read_text() for p in outbox.glob("*.html")]
    digest = next(page for page in pages if "Incident digest" in page)
    # Every section of the demo's digest has something to show (issue 15).
    assert "Trends · last 7 days" in digest  # the seeded history fills the chart
    assert "Next handover" in digest  # who is on call, from the schedules API
    assert re.search(r"\d+ outstanding from incidents resolved in the last 7 days", digest)
    assert re.search(r"Raised to Major: ", digest)  # the cycle's escalations, in words
    # Each escalation is announced: a mail (beside the digest) and a verified webhook.
    assert re.search(r"mail: INC-\d+ raised to Major: ", story), story
    assert "webhook: action.applied INC-" in story
    hooks = [json.loads(p.read_text()) for p in (outbox / "webhooks").glob("*.json")]
    assert hooks
    assert {hook["type"] for hook in hooks} == {"action.applied", "incident.notice"}
    # The demo's own change: a Critical customer-facing incident it declares after the first
    # cycle. Its notice rule polls hourly, so the announcement came through incident.io's
    # webhook to the daemon (no upper bound on the delay is asserted: the machine may be slow).
    declared = re.search(r"demo: declared (INC-\d+) ", story)
    assert declared, story
    reference = declared.group(1)
    reaction = re.search(rf"reaction: {reference} announced (\d+\.\d)s after the demo", story)
    assert reaction, story
    notices = [
        hook
        for hook in hooks
        if hook["type"] == "incident.notice" and hook["data"]["incident"]["reference"] == reference
    ]
    assert len(notices) == 1
    assert notices[0]["data"]["rule"] == "announce-critical-impact"
    created = re.search(
        r'automations_webhook_deliveries_total\{event_type="public_incident.incident_created_v2",'
        r'outcome="processed"\} (\d+)',
        metrics_after,
    )
    assert created, metrics_after
    assert float(created.group(1)) >= 1
    applied = re.findall(
        r'automations_actions_total\{outcome="applied",rule="[^"]+"\} (\d+)', metrics
    )
    assert sum(float(n) for n in applied) > 0, metrics
    assert not list(tmp_path.glob("*.db")), "the demo's ledger lives in a temporary directory"
