"""Failures travel through the engine as values, and become text only where shown or stored.

A rule that raises is carried as a ``RuleFailure`` (the rule, the step, the exception
itself); a refused action keeps the API's exception. The words logged, stored in the
ledger and printed are the ones they always were: "Type: message".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, Literal

import pytest

from automations.clock import host_now
from automations.cycle_report import CycleReport, RuleOutcome
from automations.errors import APIRejected, APIUnavailable, LedgerError, LedgerReplaced
from automations.failures import CycleFailure, RuleFailure, described
from automations.ledger import Ledger
from automations.recovery import Adopted, adopt
from automations.rules.escalate import EscalateSeverity, EscalateSeverityOptions
from automations.rules.registry import RuleRegistry
from tests.engine_harness import Harness
from tests.test_engine_sandbox import ESCALATE, H

BROKEN = ESCALATE.replace("escalate-minor", "broken").replace("escalate_severity", "broken")
SAID = "rule broken failed to evaluate and skips this cycle: RuntimeError: a bug in a plugin"


class _BrokenOptions(EscalateSeverityOptions):
    type: Literal["broken"]  # type: ignore[assignment]


class _Broken(EscalateSeverity):
    """A plugin rule with a bug: its evaluation raises."""

    options_model = _BrokenOptions

    def evaluate(self, incidents: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in a plugin")


def _failure(error: Exception) -> RuleFailure:
    return RuleFailure("broken", "evaluate", error)


# -- pure: the text is made from the exception, as before --------------------------------


def test_the_text_is_the_exceptions_type_and_message() -> None:
    """describe(), str() and described() all give "Type: message", str(exc)'s quotes kept."""
    failure = _failure(KeyError("severity"))
    assert failure.describe() == "KeyError: 'severity'"
    assert str(failure) == failure.describe()
    assert f"{failure}" == "KeyError: 'severity'"
    assert described(LedgerError("disk full")) == "LedgerError: disk full"


def test_a_rule_failure_fails_the_cycle_once() -> None:
    """A failed rule counts as one failure in the report and its line; no failure, ok."""
    report = CycleReport(schedule="every 1m", started_at=host_now())
    report.rules = [RuleOutcome("broken", failure=_failure(RuntimeError("boom")))]
    report.finish(host_now())
    assert report.failed == 1
    assert not report.ok
    assert ", 1 failed, " in report.line()

    fine = CycleReport(schedule="every 1m", started_at=host_now())
    fine.rules = [RuleOutcome("broken")]
    assert fine.failed == 0
    assert fine.ok


def test_adopt_says_why_a_rule_was_not_adopted_in_the_same_words() -> None:
    """`adopt`'s line and JSON carry the failure's text under the same key as before."""
    adopted = Adopted("broken", failure=_failure(RuntimeError("a bug in a plugin")))
    assert adopted.line() == (
        "broken: not adopted, the rule failed to evaluate: RuntimeError: a bug in a plugin"
    )
    assert json.loads(json.dumps(adopted.json())) == {
        "rule": "broken",
        "recorded": 0,
        "already": 0,
        "error": "RuntimeError: a bug in a plugin",
    }
    assert Adopted("fine").json()["error"] is None


# -- through the engine, against the sandbox ------------------------------------------------


def test_a_rule_that_raises_is_carried_as_its_exception(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """The broken rule's failure holds the RuntimeError and the step; the log line is as
    before; the other rule still plans its edit."""
    harness.add("Stuck", age=3 * H)
    harness.write(ESCALATE + BROKEN)
    runtime = harness.runtime(registry=RuleRegistry(extra={"broken": _Broken}))
    try:
        with caplog.at_level(logging.ERROR):
            actions, report = runtime.engine.plan(runtime.rules)
    finally:
        runtime.close()

    outcome = next(r for r in report.rules if r.rule == "broken")
    failure = outcome.failure
    assert failure is not None
    assert (failure.rule, failure.stage) == ("broken", "evaluate")
    assert type(failure.error) is RuntimeError
    assert failure.error.__traceback__ is None  # its frames are not kept alive by the report
    assert str(failure) == "RuntimeError: a bug in a plugin"
    assert SAID in caplog.messages
    assert [a.rule for a in actions] == ["escalate-minor"]
    assert report.failed == 1


def test_adopt_stores_the_same_text_in_the_ledger(harness: Harness) -> None:
    """`adopt` records nothing for the broken rule and its run row says why, as before."""
    harness.add("Stuck", age=3 * H)
    harness.write(ESCALATE + BROKEN)
    runtime = harness.runtime(registry=RuleRegistry(extra={"broken": _Broken}))
    try:
        fine, broken = adopt(runtime.engine, runtime.rules)
    finally:
        runtime.close()
    with Ledger(harness.ledger_path) as ledger:
        (run,) = ledger.runs.history(schedule="adopt")

    assert (fine.recorded, fine.failure) == (1, None)
    assert broken.failure is not None
    assert type(broken.failure.error) is RuntimeError
    assert run.error == "broken: RuntimeError: a bug in a plugin"


def test_a_refused_edit_keeps_the_apis_exception(harness: Harness) -> None:
    """The failed action carries the APIRejected (status and all); the ledger has its text."""
    harness.write(ESCALATE)
    stuck = harness.add("Stuck", age=3 * H)
    harness.sandbox.set_faults(
        paths=[f"/v2/incidents/{stuck['id']}/actions/edit"], error_rate=1.0, error_status=403
    )

    (report,) = harness.cycle()

    ((action, error),) = report.rules[0].failed
    assert action.incident_id == stuck["id"]
    assert isinstance(error, APIRejected)
    assert error.status == 403
    with Ledger(harness.ledger_path) as ledger:
        (event,) = ledger.events.history()
    assert event.error == str(error)


def test_what_ended_a_cycle_is_kept_as_the_exception_and_said_in_the_same_words() -> None:
    """A cycle's failure is a CycleFailure (the step and the exception); its text is the one
    the ledger's run row, the cycle line and --json always had."""
    down = APIUnavailable("GET /v2/incidents failed: HTTP 503", status=503)
    report = CycleReport(schedule="every 1m", started_at=host_now())
    assert (report.error, report.cause, report.ok) == (None, None, True)

    report.failure = CycleFailure("read", down)
    assert report.error == f"APIUnavailable: {down}"
    assert report.cause is down
    assert not report.ok
    assert report.summary()["error"] == report.error

    report.failure = CycleFailure("apply", down)
    assert report.error == f"gave up the cycle, the API is unreachable: {down}"

    # The run row could not be written: named LedgerError whatever the subclass.
    report.failure = CycleFailure("record", LedgerReplaced("ledger.db is another file now"))
    assert report.error == "LedgerError: ledger.db is another file now"
    assert isinstance(report.cause, LedgerReplaced)
