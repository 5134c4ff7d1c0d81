"""The ladder climbs: a rule's query must keep every severity a step starts from."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from automations.config import load_config
from automations.errors import ConfigError
from automations.runtime import build_rules
from tests.engine_harness import Harness
from tests.factories import CATALOG

H = timedelta(hours=1)
S = timedelta(seconds=1)
LADDER = 'steps = [ { after = "2h", to = "Major" }, { after = "6h", to = "Critical" } ]\n'


def rule(where: str, steps: str = LADDER) -> str:
    return (
        '[[rules]]\nname = "ladder"\ntype = "escalate_severity"\nevery = "1m"\n'
        f"where = {{ {where} }}\n{steps}"
    )


def build(tmp_path: Path, body: str) -> None:
    path = tmp_path / "automations.toml"
    path.write_text(body)
    build_rules(load_config(path), CATALOG)


@pytest.mark.parametrize(
    ("where", "steps", "expected"),
    [
        (
            'severity = ["Minor"]',
            LADDER,
            "rules[0].where.severity: the ladder cannot climb: step 2 (6h -> Critical) starts from "
            'Major, which step 1 sets, but severity = ["Minor"] leaves Major incidents out of the '
            "rule's query, so step 2 would never fire. List every severity a step starts from: "
            'severity = ["Minor", "Major"] (or severity_at_most = "Major"); or split the ladder '
            "into one rule per starting severity",
        ),
        (
            'status_category = ["live"], severity_at_most = "Minor"',
            LADDER,
            "rules[0].where.severity_at_most: the ladder cannot climb: step 2 (6h -> Critical) "
            'starts from Major, which step 1 sets, but severity_at_most = "Minor" leaves Major '
            "incidents out of the rule's query, so step 2 would never fire. List every severity "
            'a step starts from: severity_at_most = "Major"',
        ),
        (
            'severity_at_least = "Critical"',
            'steps = [ { after = "1h", to = "Major" }, { after = "2h", to = "Critical" } ]\n',
            "rules[0].where.severity_at_least: the ladder cannot climb: step 2 (2h -> Critical) "
            'starts from Major, which step 1 sets, but severity_at_least = "Critical" leaves '
            "Major incidents out of the rule's query, so step 2 would never fire. List every "
            'severity a step starts from: severity_at_least = "Major"',
        ),
    ],
    ids=["severity", "severity_at_most", "severity_at_least"],
)
def test_a_ladder_that_cannot_climb_is_refused(
    tmp_path: Path, where: str, steps: str, expected: str
) -> None:
    """The error names the file and key, says why, and gives the fix to write."""
    with pytest.raises(ConfigError) as info:
        build(tmp_path, rule(where, steps))
    assert str(info.value).startswith(f"{tmp_path / 'automations.toml'}: {expected}")


@pytest.mark.parametrize(
    "body",
    [
        rule('severity = ["Minor", "Major"]'),
        rule('severity = ["Major", "Minor"], severity_at_least = "Minor"'),
        rule('severity_at_most = "Major"'),
        rule('status_category = ["live"]'),
        rule('severity = ["Minor"]', 'steps = [ { after = "2h", to = "Major" } ]\n'),
        rule('severity = ["Minor"]', 'steps = [ { after = "2h", to = "Critical" } ]\n'),
    ],
    ids=["listed", "listed-with-bound", "at-most", "no-severity-filter", "one-step", "one-jump"],
)
def test_ladders_that_climb_are_accepted(tmp_path: Path, body: str) -> None:
    """Every severity a step starts from is in the query (or there is no later step)."""
    build(tmp_path, body)


def test_validate_refuses_it_with_exit_78(harness: Harness) -> None:
    """`automations validate` against the sandbox exits 78 with the message and no traceback."""
    harness.write(rule('status_category = ["live"], severity = ["Minor"]'))

    result = harness.cli("validate")

    assert result.returncode == 78
    assert "rules[0].where.severity: the ladder cannot climb" in result.stderr
    assert 'severity = ["Minor", "Major"]' in result.stderr
    assert "Traceback" not in result.stderr


def test_the_ladder_climbs_to_the_top(harness: Harness) -> None:
    """Minor at 3h goes to Major; still in the query as Major, it goes to Critical at 6h."""
    harness.write(rule('status_category = ["live"], severity = ["Minor", "Major"]'))
    item = harness.add("Stuck", age=3 * H + 30 * S)

    harness.cycle()
    assert harness.severity(item["id"]) == "Major"
    harness.sandbox.advance_clock((3 * H).total_seconds())
    harness.cycle()

    assert harness.severity(item["id"]) == "Critical"
    assert len(harness.posts()) == 2


def test_test_rule_answers_what_plan_answers_for_a_ladder(harness: Harness) -> None:
    """Saved page, same time: test-rule prints exactly what plan prints, climbing step included;
    and a ladder that cannot climb is refused by both."""
    harness.write(rule('status_category = ["live"], severity = ["Minor", "Major"]'))
    harness.runtime().close()  # the daemon ran here once: the catalog is cached in the ledger
    for name, age, severity in [
        ("Young minor", 1 * H, "Minor"),
        ("Stuck minor", 3 * H, "Minor"),
        ("Raised to major", 7 * H, "Major"),
        ("Old minor", 7 * H, "Minor"),
        ("Critical already", 9 * H, "Critical"),
        ("No severity yet", 3 * H, None),  # outside the query: plan never sees it
    ]:
        harness.add(name, age=age + 30 * S, severity=severity)
    harness.add("Minor in learning", age=9 * H, status="Documenting")
    with harness.sandbox.api() as api:
        page = api.get("/v2/incidents", params={"page_size": 250}).json()
    saved = harness.tmp_path / "page.json"
    saved.write_text(json.dumps(page))

    planned = harness.cli("plan", "--json")
    now = harness.sandbox.now()
    offline = harness.cli(
        "test-rule", "ladder", "--incidents", str(saved), "--now", now.isoformat(), "--json"
    )

    assert planned.returncode == 0, planned.stderr
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout) == json.loads(planned.stdout)
    assert [a["reason"].rsplit(" -> ", 1)[1] for a in json.loads(planned.stdout)] == [
        "Major",  # Stuck minor
        "Critical",  # Raised to major: the climbing step
        "Critical",  # Old minor
    ]

    harness.write(rule('status_category = ["live"], severity = ["Minor"]'))
    refused = harness.cli("test-rule", "ladder", "--incidents", str(saved))
    assert refused.returncode == 78
    assert "the ladder cannot climb" in refused.stderr
