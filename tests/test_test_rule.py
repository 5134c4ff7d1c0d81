"""`automations test-rule`: one rule against a saved GET /v2/incidents page, offline."""

from __future__ import annotations

import json
from datetime import timedelta

from tests.engine_harness import Harness
from tests.test_engine_sandbox import ESCALATE

H = timedelta(hours=1)


def test_a_saved_page_is_evaluated_offline_at_the_given_time(harness: Harness) -> None:
    harness.write(ESCALATE)
    harness.runtime().close()  # a daemon has run here before: the catalog is cached
    stuck = harness.add("Stuck", age=3 * H)
    young = harness.add("Young", age=1 * H)
    with harness.sandbox.api() as api:
        page = api.get("/v2/incidents", params={"page_size": 250}).json()
    saved = harness.tmp_path / "page.json"
    saved.write_text(json.dumps(page))
    now = harness.sandbox.now()
    harness.sandbox.clear_requests()

    result = harness.cli(
        "test-rule", "escalate-minor", "--incidents", str(saved), "--now", now.isoformat(),
        "--json",
    )  # fmt: skip
    later = harness.cli(
        "test-rule", "escalate-minor", "--incidents", str(saved),
        "--now", (now + 2 * H).isoformat(), "--json",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert [a["incident_id"] for a in json.loads(result.stdout)] == [stuck["id"]]
    assert sorted(a["incident_id"] for a in json.loads(later.stdout)) == sorted(
        [stuck["id"], young["id"]]
    )
    assert harness.sandbox.requests() == [], "test-rule makes no API call"


def test_a_bad_file_or_time_is_a_clear_error(harness: Harness) -> None:
    harness.write(ESCALATE)
    saved = harness.tmp_path / "page.json"
    saved.write_text("{not json")

    bad_file = harness.cli("test-rule", "escalate-minor", "--incidents", str(saved))
    saved.write_text(json.dumps({"incidents": []}))
    bad_time = harness.cli(
        "test-rule", "escalate-minor", "--incidents", str(saved), "--now", "yesterday"
    )

    assert bad_file.returncode == 78
    assert f"{saved}: not a readable JSON file" in bad_file.stderr
    assert bad_time.returncode == 78
    assert "--now: 'yesterday' is not an ISO 8601 time" in bad_time.stderr
