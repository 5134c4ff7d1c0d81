"""Every automated change in a digest's window, phrased as a person would say it.

Pure, like the rest of the digest's content: ledger events in, rows out.

- **What happened**, from the action's ``kind`` and ``details`` (recorded at claim time
  since ledger migration 0016): "Raised to Critical: live for 6h as Major",
  "Status set to Declined: was Triage; idle for 3d", "Phase set to Active",
  "Announced: still live after 6h". Older rows have neither: their edit body says it
  ("Severity set to Major", "Incident Lead assigned"), else the recorded reason.
- **Who may see it**: a change on an incident the digest fetched follows that incident's
  current state; one outside the digest's filter (not fetched) follows the visibility and
  mode stored with the claim, and an unknown one (an older row) counts as private and test:
  the reference and name alone would leak it.
- **Past the row limit**: "and N more" links to the daemon's page of the window
  (digest/changes_page.py, when ``[server] public_url`` is set), else says which command
  lists them.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode

from automations.catalog import Catalog
from automations.clock import rfc3339
from automations.digest.content import HIDDEN_MODES, one_line, safe_link
from automations.incidentio import Incident

if TYPE_CHECKING:  # the ledger (sqlite-utils) stays out of `validate --offline`'s imports
    from automations.ledger import Event

APPLIED = ("applied", "reconciled")  # EventState values (a StrEnum compares equal)
REASON_LIMIT = 300
DEFAULT_INCIDENTS_URL = "https://app.incident.io/incidents"
# human_moment() in automations/durations.py: '09:12 UTC', '24 Nov 03:10 UTC', '24 Nov 2025 ...'
_MOMENT = r"(?:\d{1,2} [A-Z][a-z]{2} (?:\d{4} )?)?\d{2}:\d{2} UTC"
# Moments in reasons are UTC (rules have no display timezone); the row shows its own time in
# the digest's, so they are dropped rather than shown in two zones.
_MOMENTS = (
    re.compile(rf"\s*\((?:since (?:creation at )?)?{_MOMENT}\)"),
    re.compile(rf" since {_MOMENT}"),
)


class IncidentLike(Protocol):
    """What a row needs of an incident the digest shows (content.IncidentRow)."""

    @property
    def reference(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def link(self) -> str | None: ...


@dataclass(frozen=True)
class ActionRow:
    """One thing the automations did, in words."""

    at: datetime
    rule: str
    reference: str
    name: str
    link: str | None
    what: str  # "Raised to Critical"
    why: str  # "live for 6h as Major" (may be empty)
    reason: str  # the rule's own words, as recorded
    outside: bool = False  # on an incident outside the digest's filter

    @property
    def summary(self) -> str:
        """'Raised to Critical: live for 6h as Major'."""
        return f"{self.what}: {self.why}" if self.why else self.what


@dataclass(frozen=True)
class ChangesMore:
    """Where to see every change of the window when the digest lists only some."""

    page_url: str | None  # the daemon's page ([server] public_url), signed
    command: str  # the same list from the command line


# --- visibility --------------------------------------------------------------------------


def may_see(
    private: bool | None, mode: str | None, *, include_private: bool, include_test: bool
) -> bool:
    """Whether this audience may see an incident; unknown (None) counts as private and test."""
    if (private is None or private) and not include_private:
        return False
    return include_test or (mode is not None and mode not in HIDDEN_MODES)


# --- phrasing ----------------------------------------------------------------------------


def plain(reason: str | None) -> str:
    """The recorded reason on one line, its UTC moments dropped."""
    text = one_line(reason, REASON_LIMIT)
    for pattern in _MOMENTS:
        text = pattern.sub("", text)
    return text


def phrase(event: Event, catalog: Catalog) -> tuple[str, str]:
    """(what, why) for one event: from its kind and details, else its edit body."""
    details = event.details or {}
    reason = plain(event.reason)
    to = _text(details.get("to"))
    if event.kind == "escalate" and to:
        return _escalation(details, to, reason, catalog)
    if event.kind == "status" and to:
        before = _text(details.get("from"))
        rest = _after(reason, f"{before} -> {to}")
        why = "; ".join(part for part in (f"was {before}" if before else "", rest) if part)
        return f"Status set to {to}", why
    if event.kind == "mirror" and to and details.get("field"):
        label = _text(details["field"])
        return f"{label} set to {to}", _before(reason, f"; {label} set to {to!r}")
    if event.kind == "notice":
        return "Announced", reason
    edit = describe_edit(event.request_body, catalog)
    return edit, reason


def _escalation(
    details: Mapping[str, Any], to: str, reason: str, catalog: Catalog
) -> tuple[str, str]:
    """'Raised to Critical' / 'Lowered to Minor', and how long it was what it was."""
    before = _text(details.get("from"))
    ranks = {s.name: s.rank for s in catalog.severities if s.rank is not None}
    was, target = ranks.get(before), ranks.get(to)
    if before in ("", "no severity"):
        verb, state = "Severity set to", "without a severity"
    elif was is not None and target is not None and target < was:
        verb, state = "Lowered to", f"as {before}"
    else:  # escalate_severity never lowers; an unknown rank reads as the rule meant it
        verb, state = "Raised to", f"as {before}"
    span = reason.split("; step ", 1)[0]
    if span == reason or span.startswith(before):  # not its own words, or "Major for 6h"
        return f"{verb} {to}", span
    return f"{verb} {to}", f"{span} {state}"


def describe_edit(body: Mapping[str, Any] | None, catalog: Catalog) -> str:
    """What an edit body changes, in words: 'Severity set to Major; Lead assigned'.

    For rows recorded before kinds were (ledger migration 0016) and for plugin kinds. An
    empty body is a notification-only action.
    """
    if body is None:
        return "Changed"
    wanted = body.get("incident") or {}
    if not wanted:
        return "Announced"
    parts = []
    if "severity_id" in wanted:
        severity = catalog.severity_by_id(str(wanted["severity_id"]))
        parts.append(f"Severity set to {severity.name if severity else wanted['severity_id']}")
    if "incident_status_id" in wanted:
        status = next((s for s in catalog.statuses if s.id == wanted["incident_status_id"]), None)
        parts.append(f"Status set to {status.name if status else wanted['incident_status_id']}")
    for entry in wanted.get("custom_field_entries") or []:
        field_ = next((f for f in catalog.custom_fields if f.id == entry["custom_field_id"]), None)
        options = catalog.custom_field_options.get(entry["custom_field_id"], ())
        values = [
            next((o.value for o in options if o.id == v.get("value_option_id")), "")
            or v.get("value_text")
            or ""
            for v in entry.get("values", [])
        ]
        label = field_.name if field_ else "A custom field"
        shown = ", ".join(v for v in values if v)
        parts.append(f"{label} set to {shown}" if shown else f"{label} cleared")
    for entry in wanted.get("incident_role_assignments") or []:
        role = next((r for r in catalog.roles if r.id == entry.get("incident_role_id")), None)
        label = role.name if role else "A role"
        assignee = entry.get("assignee") or {}
        who = assignee.get("email")
        if assignee:
            parts.append(f"{label} assigned" + (f" to {who}" if who else ""))
        else:
            parts.append(f"{label} unassigned")
    for entry in wanted.get("incident_timestamp_values") or []:
        stamp = next(
            (t for t in catalog.timestamps if t.id == entry.get("incident_timestamp_id")), None
        )
        label = stamp.name if stamp else "A timestamp"
        parts.append(f"{label} set" if entry.get("value") else f"{label} cleared")
    for key, words in (
        ("name", "Renamed"),
        ("summary", "Summary updated"),
        ("call_url", "Call link set"),
        ("slack_channel_name_override", "Channel renamed"),
    ):
        if key in wanted:
            parts.append(words)
    return one_line("; ".join(parts) or "Edited", 160)


def _text(value: object) -> str:
    return "" if value is None else one_line(str(value), 80)


def _after(reason: str, prefix: str) -> str:
    """``reason`` without ``prefix`` and the ': ' after it; '' when it is only the prefix."""
    if reason.startswith(prefix):
        return reason[len(prefix) :].lstrip(": ").strip()
    return reason


def _before(reason: str, suffix: str) -> str:
    return reason[: -len(suffix)] if suffix and reason.endswith(suffix) else reason


# --- rows --------------------------------------------------------------------------------


def action_rows(
    events: Iterable[Event],
    seen: Mapping[str, IncidentLike],
    catalog: Catalog,
    start: datetime,
    end: datetime,
    *,
    fetched: Mapping[str, Incident] | None = None,
    include_private: bool = False,
    include_test: bool = False,
    incidents_url: str = DEFAULT_INCIDENTS_URL,
) -> tuple[ActionRow, ...]:
    """Applied changes in the window (no dry runs): those on incidents the digest shows
    (``seen``) first, then those outside its filter, each part newest first.

    An incident in ``fetched`` but not in ``seen`` is judged by its current state; one the
    digest never fetched by what the claim recorded (unknown: not shown).
    """
    inside, outside = [], []
    for event in events:
        at = event.finished_at or event.claimed_at
        if event.dry_run or event.state not in APPLIED or not (start <= at < end):
            continue
        what, why = phrase(event, catalog)
        row = ActionRow(
            at=at,
            rule=one_line(event.rule, 64),
            reference=one_line(event.incident_reference, 40),
            name=one_line(event.incident_name) or "(no name)",
            link=incident_link(incidents_url, event.incident_reference),
            what=what,
            why=why,
            reason=plain(event.reason),
            outside=True,
        )
        shown = seen.get(event.incident_id)
        current = (fetched or {}).get(event.incident_id)
        if shown is not None:
            inside.append(
                _replace_incident(row, shown.reference, shown.name, shown.link, outside=False)
            )
        elif current is not None:
            if may_see(
                current.is_private,
                current.mode,
                include_private=include_private,
                include_test=include_test,
            ):
                name = one_line(current.name) or "(no name)"
                link = safe_link(current.permalink)
                outside.append(_replace_incident(row, one_line(current.reference, 40), name, link))
        elif may_see(
            event.incident_private,
            event.incident_mode,
            include_private=include_private,
            include_test=include_test,
        ):
            outside.append(row)
    inside.sort(key=lambda r: r.at, reverse=True)
    outside.sort(key=lambda r: r.at, reverse=True)
    return (*inside, *outside)


def _replace_incident(
    row: ActionRow, reference: str, name: str, link: str | None, *, outside: bool = True
) -> ActionRow:
    return replace(row, reference=reference, name=name, link=link, outside=outside)


def incident_link(incidents_url: str, reference: str) -> str | None:
    """The incident's page from the list's URL (``.../<org>/incidents``) and its number, as
    incident.io's permalinks read; None without an organisation's list to build on."""
    match = re.fullmatch(r"[A-Z]+-(\d+)", reference)
    if match is None or incidents_url == DEFAULT_INCIDENTS_URL or not safe_link(incidents_url):
        return None
    return f"{incidents_url}/{match.group(1)}"


# --- and N more --------------------------------------------------------------------------


def window_bounds(start: datetime, end: datetime) -> tuple[str, str]:
    """The window as the page's ``from`` and ``to``: whole seconds that still cover it."""
    end_up = end if end.microsecond == 0 else end + timedelta(seconds=1)
    return rfc3339(start), rfc3339(end_up)


def sign(key: str, digest: str, start: str, end: str) -> str:
    """The link's signature: only a link the daemon made (a mail's) opens the page."""
    message = f"{digest}\n{start}\n{end}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()[:32]


def page_url(public_url: str, key: str, digest: str, start: datetime, end: datetime) -> str:
    """The daemon's page listing every change of the window (digest/changes_page.py)."""
    begin, finish = window_bounds(start, end)
    query = urlencode({"from": begin, "to": finish, "sig": sign(key, digest, begin, finish)})
    return f"{public_url.rstrip('/')}/digests/{quote(digest, safe='')}/changes?{query}"


def history_command(start: datetime, now: datetime) -> str:
    """The CLI that lists the same changes, reaching back to the window's start (whole days,
    plus one: the mail is read later than it is sent)."""
    days = math.ceil(max(now - start, timedelta(0)) / timedelta(days=1)) + 1
    return f"automations history --since {days}d --state applied --state reconciled"
