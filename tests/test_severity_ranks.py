"""Severities are ranked by the catalog, by ID: never by the rank an incident embeds.

A severity the catalog lacks, or one without a rank, makes an escalation's
ranks unknown: the action is refused (logged once, counted as skipped), so a
severity is never lowered whatever the API says.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from automations.daemon import run_once
from automations.errors import ConfigError
from automations.incidentio import Incident, Severity
from automations.ledger import Ledger
from automations.rules.base import EvaluationContext
from automations.rules.escalate import EscalateSeverity, EscalateSeverityOptions
from tests.engine_harness import Harness
from tests.factories import CATALOG, NOW, incident
from tests.hostile_proxy import Answer, Exchange, HostileProxy

H = timedelta(hours=1)
Rewrite = Callable[[Exchange, Answer], Answer]
TO_MAJOR = """
[[rules]]
name = "to-major"
type = "escalate_severity"
every = "1m"
where = { status_category = ["live"] }
steps = [ { after = "2h", to = "Major" } ]
"""


def rule(catalog: Any = CATALOG, steps: Any = None) -> EscalateSeverity:
    options = EscalateSeverityOptions.model_validate(
        {
            "type": "escalate_severity",
            "name": "esc",
            "every": "1m",
            "where": {"status_category": ["live"]},
            "steps": steps or [{"after": "2h", "to": "Major"}],
        }
    )
    return EscalateSeverity(options, catalog)


def embedded(severity: str, **changes: Any) -> Incident:
    """A 3 h old live incident whose embedded severity is changed (None removes a key)."""
    body = incident(age=3 * H, severity=severity).model_dump(mode="json", exclude_none=True)
    for key, value in changes.items():
        if value is None:
            body["severity"].pop(key, None)
        else:
            body["severity"][key] = value
    return Incident.model_validate(body)


def test_an_embedded_severity_without_rank_is_ranked_by_the_catalog() -> None:
    """A Critical incident whose embedded severity has no rank is not 'raised' to Major."""
    critical = embedded("Critical", rank=None)
    assert "rank" not in critical.model_dump(exclude_none=True)["severity"]
    assert rule().evaluate([critical], EvaluationContext(NOW, CATALOG)) == []


def test_an_embedded_wrong_rank_is_ignored() -> None:
    """A Critical claiming rank 1 stays; a Minor claiming rank 99 is still raised."""
    critical, minor = embedded("Critical", rank=1), embedded("Minor", rank=99)
    actions = rule().evaluate([critical, minor], EvaluationContext(NOW, CATALOG))
    assert [
        (a.incident_id, a.request_body()["incident"]["severity_id"], a.refused) for a in actions
    ] == [(minor.id, "SEV2", None)]


def test_a_severity_missing_from_the_catalog_refuses_the_action() -> None:
    """An unknown severity ID gives a refused action (never claimed) with a clear reason."""
    unknown = embedded("Minor", id="SEV-NEW", name="Sev 0", rank=0)
    rule_ = rule()
    (action,) = rule_.evaluate([unknown], EvaluationContext(NOW, CATALOG))
    assert action.refused is not None
    assert "'Sev 0'" in action.refused
    assert "not in the organisation's catalog" in action.refused
    assert "never lowered" in action.refused
    # The re-check before an edit refuses it the same way.
    assert rule_.still_applies(action, unknown, EvaluationContext(NOW, CATALOG)) == action.refused


def test_a_catalog_severity_without_rank() -> None:
    """A step target without a rank is a config error; an incident at one is refused."""
    unranked = tuple(
        Severity(id=s.id, name=s.name) if s.name == "Minor" else s for s in CATALOG.severities
    )
    catalog = dataclasses.replace(CATALOG, severities=unranked)
    with pytest.raises(ConfigError, match=r"steps\[0\]\.to: severity 'Minor' has no rank"):
        rule(catalog, steps=[{"after": "2h", "to": "Minor"}])
    (action,) = rule(catalog).evaluate([embedded("Minor")], EvaluationContext(NOW, catalog))
    assert action.refused is not None
    assert "'Minor' (SEV1) has no rank in the organisation's catalog" in action.refused


def incidents_in(body: Any) -> Iterator[dict[str, Any]]:
    """The incident objects of a list page, a single incident or an edit's answer."""
    if isinstance(body, dict):
        if isinstance(body.get("incidents"), list):
            yield from body["incidents"]
        if isinstance(body.get("incident"), dict):
            yield body["incident"]


def rewriting_incidents(change: Callable[[dict[str, Any]], None]) -> Rewrite:
    """A proxy rewrite applying ``change`` to every incident the API sends."""

    def rewrite(_exchange: Exchange, answer: Answer) -> Answer:
        if not answer.headers.get("content-type", "").startswith("application/json"):
            return answer
        body = answer.json_body()
        for item in incidents_in(body):
            change(item)
        return answer.with_json(body)

    return rewrite


def test_the_engine_never_lowers_a_severity_sent_without_rank(
    harness: Harness, hostile: HostileProxy
) -> None:
    """Against an API that omits every embedded rank: Critical stays, Minor is raised."""

    def drop_rank(item: dict[str, Any]) -> None:
        if isinstance(item.get("severity"), dict):
            item["severity"].pop("rank", None)

    hostile.rewrite = rewriting_incidents(drop_rank)
    harness.write(TO_MAJOR, base_url=hostile.url)
    critical = harness.add("Critical, no rank", age=3 * H, severity="Critical")
    minor = harness.add("Minor, no rank", age=3 * H, severity="Minor")

    (report,) = harness.cycle()

    assert report.ok, report.line()
    assert harness.severity(critical["id"]) == "Critical"
    assert harness.severity(minor["id"]) == "Major"
    assert [p["path"].split("/")[3] for p in harness.posts()] == [minor["id"]]


def test_the_engine_refuses_a_severity_missing_from_the_catalog(
    harness: Harness, hostile: HostileProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """An incident at a severity unknown to the catalog: skipped each cycle, logged once,
    never claimed or edited; `plan` says why."""
    critical = harness.add("Critical, shown as unknown", age=3 * H, severity="Critical")

    def unknown_severity(item: dict[str, Any]) -> None:
        if item["id"] == critical["id"]:
            item["severity"].update(id="01UNKNOWNSEVERITY", name="Sev 0", rank=0)

    hostile.rewrite = rewriting_incidents(unknown_severity)
    harness.write(TO_MAJOR, base_url=hostile.url)

    runtime = harness.runtime()
    try:
        with caplog.at_level(logging.INFO):
            reports = [run_once(runtime)[0] for _ in range(2)]
    finally:
        runtime.close()

    assert [(r.ok, r.applied, r.skipped) for r in reports] == [(True, 0, 1), (True, 0, 1)]
    assert harness.posts() == []
    assert harness.severity(critical["id"]) == "Critical"
    (refusal,) = [r for r in caplog.records if "not in the organisation's catalog" in r.message]
    assert refusal.levelno == logging.WARNING
    with Ledger(harness.ledger_path) as ledger:
        assert ledger.events.history() == []
    plan = harness.cli("plan")
    assert plan.returncode == 0, plan.stderr
    assert "nothing to do" in plan.stdout
    assert "refused" in plan.stderr
    assert "'Sev 0'" in plan.stderr
