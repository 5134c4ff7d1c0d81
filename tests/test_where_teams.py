"""``where.team_ids``: per-team rules and digests. The API has no team filter, so teams are
judged locally after fetching, in the engine's polling, on webhooks, in digests and in
``test-rule``; the sandbox never receives a team parameter."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from automations.config import load_config
from automations.digest.fetch import digest_filter
from tests.digest_support import Clock, SMTPServer, open_digests, parts, tick_ok, write_config
from tests.engine_harness import REPO, Harness
from tests.factories import CATALOG
from tests.openapi_conformance import Conformance
from tests.sandbox_server import SandboxControl
from tests.webhook_support import WEBHOOKS, deliveries, wait_until, webhook_daemon

H = timedelta(hours=1)
# Monday 23 November 2026, 30 s after the 08:00 (GMT) run of "0 8 * * mon-fri".
T0 = datetime(2026, 11, 23, 8, 0, 30, tzinfo=UTC)


def escalate(team_ids: list[str], name: str = "escalate-team") -> str:
    """An escalation rule for live Minor incidents of ``team_ids``."""
    teams = ", ".join(f'"{team}"' for team in team_ids)
    return f"""
[[rules]]
name = "{name}"
type = "escalate_severity"
every = "1h"
where = {{ status_category = ["live"], severity = ["Minor"], team_ids = [{teams}] }}
steps = [ {{ after = "2h", to = "Major" }} ]
"""


def three_teams(harness: Harness) -> dict[str, dict[str, Any]]:
    """Three due Minor incidents: one of Payments, one of Platform, one of no team."""
    return {
        "payments": harness.add("Card declines", age=3 * H, teams=["Payments"]),
        "platform": harness.add("Deploys stuck", age=3 * H, teams=["Platform"]),
        "nobody": harness.add("Unowned", age=3 * H),
    }


def team_id(incident: dict[str, Any]) -> str:
    (team,) = incident["team_ids"]
    return str(team)


def incident_list_queries(sandbox: SandboxControl) -> list[str]:
    return [
        r["query"]
        for r in sandbox.requests()
        if r["method"] == "GET" and r["path"] == "/v2/incidents"
    ]


def assert_schema_requests(sandbox: SandboxControl, openapi: Conformance) -> None:
    """Every request the sandbox logged is one the real API documents (no team parameter)."""
    for entry in sandbox.requests():
        if entry["path"].startswith("/v"):
            pairs = [(k, v) for k, v in entry["query_pairs"]]
            openapi.validate_request(entry["method"], entry["path"], pairs, entry["body"])


def test_a_rule_with_team_ids_escalates_only_that_teams_incidents(
    harness: Harness, openapi: Conformance
) -> None:
    """One cycle escalates the Payments incident only; no request names a team."""
    incidents = three_teams(harness)
    harness.write(escalate([team_id(incidents["payments"])]))

    harness.cycle()

    severities = {what: harness.severity(i["id"]) for what, i in incidents.items()}
    assert severities == {"payments": "Major", "platform": "Minor", "nobody": "Minor"}
    queries = incident_list_queries(harness.sandbox)
    assert queries, "the rule polled"
    assert not [q for q in queries if "team" in q.lower()]
    assert_schema_requests(harness.sandbox, openapi)


def test_two_teams_in_one_rule_and_two_rules_sharing_one_query(harness: Harness) -> None:
    """team_ids are OR-ed; two rules differing only in team_ids share one fetch yet each
    acts on its own team."""
    incidents = three_teams(harness)
    payments, platform = team_id(incidents["payments"]), team_id(incidents["platform"])
    harness.write(escalate([payments], "payments") + escalate([payments, platform], "both"))

    report = harness.cycle()

    keys = {p["path"].split("/")[3] for p in harness.posts()}
    assert keys == {incidents["payments"]["id"], incidents["platform"]["id"]}
    assert harness.severity(incidents["nobody"]["id"]) == "Minor"
    assert harness.list_requests() == 1  # one query, filtered twice locally
    (cycle,) = report
    applied = {outcome.rule: [a.incident_id for a in outcome.applied] for outcome in cycle.rules}
    assert applied["payments"] == [incidents["payments"]["id"]]
    # "both" found the Payments incident already Major on its re-read: skipped, not edited
    assert applied["both"] == [incidents["platform"]["id"]]


def test_plan_names_the_team_filter_and_what_it_kept(harness: Harness) -> None:
    """`plan` says where.team_ids kept 1 of the 3 incidents fetched, filtered locally."""
    incidents = three_teams(harness)
    harness.write(escalate([team_id(incidents["payments"])]))

    result = harness.cli("plan")

    assert result.returncode == 0, result.stderr
    assert "Card declines" in result.stdout
    assert "Deploys stuck" not in result.stdout
    assert (
        "rule escalate-team: where.team_ids kept 1 of 3 incidents fetched (teams are filtered "
        "locally, after fetching: GET /v2/incidents has no team filter)"
    ) in result.stderr


def test_a_team_change_before_the_edit_releases_the_claim(harness: Harness) -> None:
    """The re-read before the edit judges team_ids again: an incident moved to another team
    after the poll is skipped, not escalated."""
    incidents = three_teams(harness)
    payments = incidents["payments"]
    harness.write(escalate([team_id(payments)]))
    runtime = harness.runtime()
    try:
        (rule,) = runtime.rules
        found = runtime.engine.poller.poll_and_evaluate([rule], runtime.engine.clock(), None)
        assert [a.incident_id for a in found.candidates[rule.name]] == [payments["id"]]
        harness.sandbox.update_incident(payments["id"], teams=["Platform"])
        outcome = runtime.engine._run_rule(rule, found, None, None)
    finally:
        runtime.close()
    assert harness.severity(payments["id"]) == "Minor"
    assert [why for _action, why in outcome.skipped] == [
        "no longer owned by a team in where.team_ids after re-reading the incident"
    ]
    assert harness.posts() == []


def test_a_webhook_for_another_teams_incident_changes_nothing(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deliveries for a Platform and a Payments incident: only Payments' is escalated."""
    incidents = three_teams(harness)
    payments, platform = incidents["payments"], incidents["platform"]
    harness.write(WEBHOOKS + escalate([team_id(payments)]))
    with webhook_daemon(harness, monkeypatch) as (daemon, sender):
        assert sender.updated(platform["id"]).status_code == 200
        assert sender.updated(payments["id"]).status_code == 200
        wait_until(lambda: daemon.runtime.ledger.webhooks.backlog() == 0, "processing")
        states = {d.incident_id: d.state.value for d in deliveries(daemon.runtime)}
    assert states == {payments["id"]: "processed", platform["id"]: "processed"}
    assert harness.severity(payments["id"]) == "Major"
    assert harness.severity(platform["id"]) == "Minor"
    assert harness.list_requests() == 0  # the webhooks alone: no poll


def test_test_rule_offline_keeps_to_the_team(harness: Harness, tmp_path: Path) -> None:
    """`test-rule` on a saved page judges team_ids like the daemon does."""
    incidents = three_teams(harness)
    harness.write(escalate([team_id(incidents["payments"])]))
    harness.runtime().close()  # a daemon has run here before: the catalog is cached
    with harness.sandbox.api() as api:
        page = api.get("/v2/incidents", params={"page_size": 25}).json()
    saved = tmp_path / "page.json"
    saved.write_text(json.dumps(page))

    result = harness.cli("test-rule", "escalate-team", "--incidents", str(saved), "--json")

    assert result.returncode == 0, result.stderr
    assert [a["incident_id"] for a in json.loads(result.stdout)] == [incidents["payments"]["id"]]


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        ('[""]', 'rules[0].where.team_ids[0]: must not be empty: give a team ID, e.g. "01HXYZ..."'),
        (
            '["Payments"]',
            "rules[0].where.team_ids[0]: 'Payments' is not a team ID (letters and digits, "
            'e.g. "01HXYZ...", as in an incident\'s team_ids); team names are not accepted '
            'here: to filter by the Team custom field write custom_field = { Team = ["Payments"] }',
        ),
        ("[1]", 'rules[0].where.team_ids[0]: expected text in quotes, e.g. "01HXYZ..."; got 1'),
        ('"01HXYZ"', "rules[0].where.team_ids: expected a list, e.g. [\"01HXYZ\"]; got '01HXYZ'"),
        ('["01HA", "01HA"]', "rules[0].where.team_ids: 01HA listed twice; list each team once"),
    ],
)
def test_bad_team_ids_are_refused_at_their_key_path(
    harness: Harness, written: str, problem: str
) -> None:
    """`validate --offline` exits 78 naming the file, the key path and what is allowed."""
    harness.write(escalate(["01H"]).replace('team_ids = ["01H"]', f"team_ids = {written}"))

    result = harness.cli("validate", "--offline")

    assert result.returncode == 78, result.stdout
    assert str(harness.config_path) in result.stderr
    assert problem in result.stderr


# -- digests ---------------------------------------------------------------------------------

TEAM_DIGEST = """
[[digests]]
name = "{name}"
cron = "0 8 * * mon-fri"
timezone = "Europe/London"
to = ["{name}@example.com"]
where = {{ team_ids = ["{team}"] }}
"""


@pytest.fixture
def org(sandbox: SandboxControl) -> dict[str, dict[str, Any]]:
    """The seeded catalog at T0 with two live incidents of each of Payments and Platform, and
    one of no team."""
    sandbox.reset(incidents=0, now=T0)

    def add(name: str, **fields: Any) -> dict[str, Any]:
        created = (T0 - 3 * H).isoformat()
        return sandbox.add_incident(
            name=name, created_at=created, updated_at=created, status="Investigating", **fields
        )

    return {
        "Card declines": add("Card declines", severity="Major", teams=["Payments"]),
        "Refunds slow": add("Refunds slow", severity="Minor", teams=["Payments"]),
        "Deploys stuck": add("Deploys stuck", severity="Major", teams=["Platform"]),
        "DNS flaps": add("DNS flaps", severity="Minor", teams=["Platform"]),
        "Unowned": add("Unowned", severity="Minor"),
    }


def test_two_per_team_digests_in_one_config_each_get_their_own(
    sandbox: SandboxControl,
    smtp: SMTPServer,
    tmp_path: Path,
    org: dict[str, dict[str, Any]],
    openapi: Conformance,
) -> None:
    """One tick sends the payments digest to payments@ with Payments' incidents only, and
    the platform digest to platform@ with Platform's; no request names a team."""
    payments, platform = team_id(org["Card declines"]), team_id(org["Deploys stuck"])
    second = TEAM_DIGEST.format(name="platform", team=platform)
    path = write_config(
        tmp_path,
        sandbox.base_url,
        smtp.port,
        name="payments",
        extra=f'where = {{ team_ids = ["{payments}"] }}\n',
        more=second,
    )
    sandbox.clear_requests()
    runtime, digests = open_digests(path, Clock(T0))
    try:
        tick_ok(digests)
    finally:
        runtime.close()

    by_digest = {m.message["X-Automations-Digest"]: m for m in smtp.received}
    assert set(by_digest) == {"payments", "platform"}
    assert "platform@example.com" in by_digest["platform"].rcpt_tos
    assert "payments@example.com" not in by_digest["platform"].rcpt_tos
    owned = {
        "payments": {"Card declines", "Refunds slow"},
        "platform": {"Deploys stuck", "DNS flaps"},
    }
    for name, received in by_digest.items():
        text, html = parts(received.message)
        for incident in org:
            shown = incident in owned[name]
            assert (incident in text) is shown, (name, incident)
            assert (incident in html) is shown, (name, incident)
        assert "2 live" in received.message["Subject"]
    assert not [q for q in incident_list_queries(sandbox) if "team" in q.lower()]
    assert_schema_requests(sandbox, openapi)


def test_a_digest_without_team_ids_still_shows_every_team(
    sandbox: SandboxControl, smtp: SMTPServer, tmp_path: Path, org: dict[str, dict[str, Any]]
) -> None:
    """The control: the same organisation without team_ids lists all five incidents."""
    path = write_config(tmp_path, sandbox.base_url, smtp.port, name="everyone")
    runtime, digests = open_digests(path, Clock(T0))
    try:
        rendered = digests.preview("everyone")
    finally:
        runtime.close()
    for incident in org:
        assert incident in rendered.text


def test_the_commented_per_team_example_in_example_toml_is_valid(tmp_path: Path) -> None:
    """Uncommented, config/example.toml's per-team digests load and resolve, each with its own
    team_ids, and nothing about teams reaches the server-side query."""
    example = REPO / "config" / "example.toml"
    text = example.read_text()
    begin, end = "# -- per-team digests: begin --\n", "# -- per-team digests: end --\n"
    block = text[text.index(begin) + len(begin) : text.index(end)]
    uncommented = "\n".join(
        line.removeprefix("# ").removeprefix("#") for line in block.splitlines()
    )
    path = tmp_path / "example.toml"
    path.write_text(text.replace(block, uncommented + "\n"))
    config = load_config(path)
    teams = {d.name: d.where.team_ids for d in config.digests if d.where.team_ids}
    assert teams == {
        "payments-daily": ("01HZPAYMENTS0000000000000",),
        "platform-daily": ("01HZPLATFORM0000000000000",),
    }
    for index, options in enumerate(config.digests):
        query = digest_filter(options, CATALOG, f"digests[{index}]")
        assert not [k for k, _v in query.to_params() if "team" in k]
