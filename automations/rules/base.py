"""What a rule is: an options model, a server-side query, and a pure evaluation.

Plugin API v1 (``PLUGIN_API_VERSION``). A rule type is a class registered under
the ``automations.rules`` entry-point group (the built-ins register the same way
as third-party rules). The engine does the I/O; a rule only turns incidents into
planned actions:

- ``evaluate(incidents, ctx)`` judges a page of incidents against one
  ``EvaluationContext`` (now, catalog, follow-ups, updates, a read-only ledger
  view), so the context can grow without breaking a rule's signature;
- ``Rule.action(incident, step, reason, ...)`` builds every planned action: it
  owns the event-key prefix (``rule/incident/step``) and attaches the rule's
  ``notify`` channels and ``announce`` message;
- ``still_applies(action, incident, ctx)`` re-checks one action on a fresh read.

What an action does is its ``effect``: ``"edit"`` (POST the incident edit) or
``"notify"`` (nothing on the incident; only its notifications go out). The
engine applies each effect through one effector (automations/effects.py).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from automations.catalog import Catalog
from automations.durations import Duration
from automations.errors import ConfigError
from automations.incidentio import (
    FollowUp,
    Incident,
    IncidentEdit,
    IncidentFilter,
    IncidentUpdate,
)
from automations.schedules import CronExpression, TimeZoneName
from automations.text import NAME_LIMIT, REASON_LIMIT, one_line
from automations.where import LocalFilter, Where

PLUGIN_API_VERSION = 1
CHANNEL_NAME = r"^[a-z0-9][a-z0-9_-]*$"
Effect = Literal["edit", "notify"]
# The announce template is rendered in a sandbox: it is config, but it sees upstream text.
_ANNOUNCE = SandboxedEnvironment(autoescape=False)
ANNOUNCE_LIMIT = 2000  # an incident update is a timeline entry, not a document


def check_channel_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """Channel names as [[channels]] spells them; whether each exists is checked with the file."""
    for name in names:
        if not re.match(CHANNEL_NAME, name):
            raise ValueError(f"{name!r} is not a channel name (lowercase, digits, - and _)")
    if len(set(names)) != len(names):
        raise ValueError("a channel is listed twice")
    return names


class RuleOptions(BaseModel):
    """Keys every rule has; a rule type subclasses this with its own options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(
        description="The rule type, e.g. escalate_severity (see `automations rules`)."
    )
    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        max_length=64,
        description="Unique name: lowercase letters, digits, '-' and '_'. Part of every event key.",
    )
    enabled: StrictBool = Field(
        True, description="Set false to keep a rule in the file but not run it."
    )
    every: Duration | None = Field(None, description="Run on an interval, e.g. 1m.")
    cron: CronExpression | None = Field(
        None, description="Run on a cron schedule instead, e.g. '*/5 * * * *'."
    )
    timezone: TimeZoneName | None = Field(
        None, description="IANA timezone for cron, e.g. Europe/London."
    )
    where: Where = Field(
        default_factory=Where,
        description="Incident filters: sent to the API, except team_ids (judged after fetching).",
    )
    notify_incident_channel: StrictBool = Field(
        False,
        description="Whether incident.io announces this rule's edits in the incident channel.",
    )
    max_actions_per_cycle: StrictInt = Field(
        10, ge=1, description="Safety brake: past this many edits in one cycle the rule stops."
    )
    max_actions_per_day: StrictInt = Field(
        100,
        ge=1,
        description="Safety brake: past this many edits in the last 24 hours (counted in the "
        "ledger) the rule holds back the rest until earlier edits are a day old.",
    )
    notify: tuple[str, ...] = Field(
        (),
        description="Channels (names from [[channels]]) each applied action is announced to.",
    )
    announce: str | None = Field(
        None,
        max_length=ANNOUNCE_LIMIT,
        description="Post an incident update with this message when an action is applied, "
        "e.g. 'Escalated automatically: {{ reason }}' (Jinja: reason, rule, incident).",
    )

    @field_validator("notify")
    @classmethod
    def _channel_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        return check_channel_names(names)

    @field_validator("announce")
    @classmethod
    def _announce_template(cls, text: str | None) -> str | None:
        if text is not None:
            try:
                _ANNOUNCE.from_string(text)
            except TemplateError as exc:
                raise ValueError(f"not a valid Jinja template: {exc}") from None
        return text

    @model_validator(mode="after")
    def _one_schedule(self) -> RuleOptions:
        if (self.every is None) == (self.cron is None):
            raise ValueError('give exactly one of every (e.g. every = "1m") or cron')
        if self.cron is not None and self.timezone is None:
            raise ValueError('cron needs a timezone, e.g. timezone = "Europe/London"')
        if self.every is not None and self.timezone is not None:
            raise ValueError("timezone only applies to cron schedules")
        return self


OptionsT = TypeVar("OptionsT", bound=RuleOptions)


@dataclass(frozen=True)
class PlannedAction:
    """One action a rule wants, with the key that makes it happen at most once.

    Build it with ``Rule.action`` (which owns the key prefix and the notify spec).

    The incident's name and reference, and the reason, are clipped to one bounded
    line (automations/text.py) here, so plan output, logs and the ledger never carry
    a megabyte of upstream text, whichever rule (built-in or plugin) made the action.
    """

    rule: str
    incident_id: str
    incident_reference: str
    incident_name: str
    event_key: str
    reason: str
    edit: IncidentEdit | None
    notify_incident_channel: bool
    kind: str = "edit"  # what the rule calls it (logs, digests): escalate, status, mirror...
    details: Mapping[str, Any] = field(default_factory=dict)
    effect: Effect = "edit"
    notify: tuple[str, ...] = ()  # channel names
    incident_private: bool = False  # only channels with include_private hear of it
    incident_mode: str | None = None  # standard, retrospective, test, tutorial (digests)
    announce: str | None = None  # the rendered incident-update message
    # Why this action must not be applied although the rule matched (e.g. the ranks it
    # depends on are unknown): the engine never claims it, counts it as skipped with this
    # reason and logs it once.
    refused: str | None = None

    def __post_init__(self) -> None:
        for name, limit in (
            ("incident_name", NAME_LIMIT),
            ("incident_reference", NAME_LIMIT),
            ("reason", REASON_LIMIT),
            ("refused", REASON_LIMIT),
        ):
            if (text := getattr(self, name)) is not None:
                object.__setattr__(self, name, one_line(text, limit))
        if (self.effect == "edit") != (self.edit is not None):
            raise ValueError(f"{self.event_key}: an edit action needs an edit, and only it")

    @property
    def notifies(self) -> bool:
        return bool(self.notify or self.announce)

    def request_body(self) -> dict[str, Any]:
        """The exact body POSTed to /v2/incidents/{id}/actions/edit ({} for no edit)."""
        if self.edit is None:
            return {}
        return {
            "incident": self.edit.model_dump(mode="json", exclude_unset=True),
            "notify_incident_channel": self.notify_incident_channel,
        }


class LedgerView(Protocol):
    """What a rule may read of the ledger: whether an event key was acted on."""

    def done_keys(self, keys: Iterable[str]) -> set[str]: ...


@dataclass(frozen=True)
class EvaluationContext:
    """Everything a rule judges by besides the incidents; new fields come with defaults."""

    now: datetime
    catalog: Catalog
    # incident ID -> its follow-ups; None unless the rule's ``needs_follow_ups``
    follow_ups: Mapping[str, Sequence[FollowUp]] | None = None
    # incident ID -> its updates (oldest first), for the incidents ``needs_updates`` named;
    # any other incident is judged as if it had none
    updates: Mapping[str, Sequence[IncidentUpdate]] = field(default_factory=dict)
    ledger: LedgerView | None = None

    def updates_of(self, incident_id: str) -> Sequence[IncidentUpdate]:
        return self.updates.get(incident_id, ())


class Rule(ABC, Generic[OptionsT]):
    """A configured rule with its names resolved against the catalog."""

    type_name: ClassVar[str]
    options_model: ClassVar[type[RuleOptions]]
    summary: ClassVar[str]

    def __init__(self, options: OptionsT, catalog: Catalog) -> None:
        self.options = options
        self.catalog = catalog
        self._announce = (
            None if options.announce is None else _ANNOUNCE.from_string(options.announce)
        )
        self.check(catalog)

    @property
    def name(self) -> str:
        return self.options.name

    def check(self, catalog: Catalog) -> None:
        """Raise ConfigError for options that names or the API make impossible."""

    def query(self) -> IncidentFilter:
        """The server-side query: identical queries are fetched once per cycle."""
        return self.options.where.to_filter(self.catalog)

    def local_filter(self) -> LocalFilter:
        """The part of ``where`` the API cannot filter on (``team_ids``): the engine applies
        it to what ``query`` fetched, before ``evaluate`` and again on the re-read."""
        return self.options.where.local_filter()

    @property
    def needs_follow_ups(self) -> bool:
        return False

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels every action of this rule is announced to (``notify``)."""
        return self.options.notify

    def needs_updates(self, incident: Incident, now: datetime) -> bool:
        """Whether judging ``incident`` at ``now`` needs its incident updates.

        The engine fetches them (one request per incident) only where this is True,
        and passes them in ``ctx.updates`` to ``evaluate`` and ``still_applies``.
        """
        return False

    @abstractmethod
    def evaluate(
        self, incidents: Sequence[Incident], ctx: EvaluationContext
    ) -> list[PlannedAction]:
        """Pure: no I/O; ``ctx.now`` is passed in so runs are replayable.

        Called once per page of the rule's query (and on single incidents for the
        re-check before an action), so judge each incident on its own.
        """

    def still_applies(
        self, action: PlannedAction, incident: Incident, ctx: EvaluationContext
    ) -> str | None:
        """Re-check one action against a fresh read; None if it still applies, else why not."""
        for candidate in self.evaluate([incident], ctx):
            if candidate.event_key == action.event_key:
                return candidate.refused
        return "no longer applies after re-reading the incident"

    def action(
        self,
        incident: Incident,
        step: str,
        reason: str,
        *,
        edit: IncidentEdit | None = None,
        kind: str | None = None,
        details: Mapping[str, Any] | None = None,
        refused: str | None = None,
    ) -> PlannedAction:
        """One planned action on ``incident``, keyed ``<rule>/<incident id>/<step>``.

        ``step`` names what happens (e.g. ``severity-<id>``): the same step on the same
        incident is done at most once, ever. With ``edit`` the action edits the incident;
        without, it only notifies (the rule's ``notify`` channels and ``announce``).
        """
        if "/" in step or not step:
            raise ValueError(f"step {step!r}: one non-empty key segment, without '/'")
        clipped = one_line(reason, REASON_LIMIT)
        return PlannedAction(
            rule=self.name,
            incident_id=incident.id,
            incident_reference=incident.reference,
            incident_name=incident.name,
            event_key=f"{self.name}/{incident.id}/{step}",
            reason=clipped,
            edit=edit,
            notify_incident_channel=self.options.notify_incident_channel,
            kind=kind or ("edit" if edit is not None else "notice"),
            details=dict(details or {}),
            effect="edit" if edit is not None else "notify",
            notify=self.channels,
            incident_private=incident.is_private,
            incident_mode=incident.mode,
            announce=self._render_announce(incident, clipped),
            refused=refused,
        )

    def _render_announce(self, incident: Incident, reason: str) -> str | None:
        if self._announce is None:
            return None
        values = {
            "reason": reason,
            "rule": self.name,
            "incident": {
                "reference": one_line(incident.reference, NAME_LIMIT),
                "name": one_line(incident.name, NAME_LIMIT),
                "severity": one_line(incident.severity.name) if incident.severity else None,
                "status": one_line(incident.incident_status.name),
            },
        }
        try:
            text = self._announce.render(values)
        except TemplateError as exc:  # a runtime error (e.g. an undefined attribute)
            raise ConfigError(f"rule {self.name!r}: announce: {exc}") from exc
        return text.strip()[:ANNOUNCE_LIMIT] or None


AnyRule = Rule[Any]
