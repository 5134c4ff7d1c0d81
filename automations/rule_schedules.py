"""A rule's schedule as the daemon runs it: the job's name, the groups, the trigger.

Rules with the same schedule share one job name, so they run in one job and
share one poll (the daemon's jobs, and ``once``, which runs each group once).
The trigger is an interval with jitter whose first run is at once, or a
crontab(5) schedule (automations/cron_trigger.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from automations.clock import host_now
from automations.durations import format_duration
from automations.rules.base import AnyRule, RuleOptions


def schedule_key(rule: AnyRule) -> str:
    """A readable, stable job name for the rule's schedule."""
    opts = rule.options
    if opts.every is not None:
        return f"every {format_duration(opts.every)}"
    return f"cron {opts.cron} {opts.timezone}"


def group_by_schedule(rules: Sequence[AnyRule]) -> dict[str, list[AnyRule]]:
    groups: dict[str, list[AnyRule]] = defaultdict(list)
    for rule in rules:
        groups[schedule_key(rule)].append(rule)
    return dict(groups)


def rule_trigger(opts: RuleOptions, jitter_seconds: int) -> tuple[Any, datetime | None]:
    """The APScheduler trigger of a schedule, and its first run (None: when the cron says)."""
    from apscheduler.triggers.interval import IntervalTrigger

    from automations.cron_trigger import cron_trigger

    trigger: Any
    first_run: datetime | None = None
    if opts.every is not None:
        seconds = int(opts.every.total_seconds())
        jitter = min(jitter_seconds, seconds // 10) or None
        trigger = IntervalTrigger(seconds=seconds, jitter=jitter)
        first_run = host_now()
    else:
        assert opts.cron is not None  # the options' validator pairs cron and timezone
        assert opts.timezone is not None
        trigger = cron_trigger(opts.cron, opts.timezone, jitter=jitter_seconds or None)
    return trigger, first_run
