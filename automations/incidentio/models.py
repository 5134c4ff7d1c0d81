"""Typed views of incident.io resources (what the client reads).

Responses are parsed leniently: unknown fields are kept (``extra="allow"``) and
enum-like fields are plain ``str`` so a value the API adds tomorrow does not
break today's daemon; compare them with the ``StrEnum``s below. Only what the
product reads is required, so a missing optional attribute never turns a good
response into a retried "malformed body". Request bodies are in payloads.py;
the response wrappers and the page parser are at the end.
"""

from __future__ import annotations

import functools
import gc
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, create_model


def _as_utc(value: datetime) -> datetime:
    # The API always sends offsets; a naive value would make comparisons with
    # aware "now" raise, so treat it as UTC rather than fail the whole page.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


UTCDateTime = Annotated[datetime, AfterValidator(_as_utc)]
ModelT = TypeVar("ModelT", bound=BaseModel)


class StatusCategory(StrEnum):
    """The category of an incident status (the app labels live 'Active')."""

    TRIAGE = "triage"
    DECLINED = "declined"
    MERGED = "merged"
    CANCELED = "canceled"
    LIVE = "live"
    LEARNING = "learning"
    CLOSED = "closed"
    PAUSED = "paused"


class IncidentMode(StrEnum):
    """Incident modes; the list endpoint returns standard and retrospective by default."""

    STANDARD = "standard"
    RETROSPECTIVE = "retrospective"
    TEST = "test"
    TUTORIAL = "tutorial"


class Visibility(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"


class FollowUpStatus(StrEnum):
    """FollowUpV3 statuses: completed and not_doing are the terminal ones; deleted is gone."""

    OUTSTANDING = "outstanding"
    COMPLETED = "completed"
    DELETED = "deleted"
    NOT_DOING = "not_doing"


class DurationMetricStatus(StrEnum):
    """Whether a duration metric could be computed (section 0: always sent)."""

    CALCULATING = "calculating"
    INVALID_TIMESTAMPS = "invalid_timestamps"
    SUCCESS = "success"
    TIMESTAMPS_MISSING = "timestamps_missing"


class Seat(StrEnum):
    """What a user's seat allows, for on-call and for response (section 0)."""

    FULL_ACCESS = "full_access"
    VIEWER_ONLY = "viewer_only"
    NONE = "none"


class _Resource(BaseModel):
    """Base of every response model: keeps unknown fields, immutable, hashable catalog items.

    ``defer_build``: validators are built on first use, not at import, so commands
    that never read an API response (``validate --offline``) start faster.
    """

    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)


# --- The organisation's settings (the catalog) ---------------------------------


class Severity(_Resource):
    """A severity; a higher rank is more severe."""

    id: str
    name: str
    description: str = ""
    rank: int = 0
    created_at: UTCDateTime | None = None
    updated_at: UTCDateTime | None = None


class IncidentStatus(_Resource):
    id: str
    name: str
    description: str = ""
    rank: int = 0
    category: str = ""
    created_at: UTCDateTime | None = None
    updated_at: UTCDateTime | None = None


class IncidentType(_Resource):
    id: str
    name: str
    description: str = ""
    is_default: bool = False
    private_incidents_only: bool = False
    create_in_triage: str = "optional"
    owning_team_ids: tuple[str, ...] = ()
    created_at: UTCDateTime | None = None
    updated_at: UTCDateTime | None = None


class IncidentRole(_Resource):
    id: str
    name: str
    shortform: str = ""
    description: str = ""
    instructions: str = ""
    role_type: str = "custom"
    required: bool | None = None
    created_at: UTCDateTime | None = None
    updated_at: UTCDateTime | None = None


class CustomFieldOption(_Resource):
    id: str
    custom_field_id: str = ""
    value: str
    sort_key: int = 1000


class FixedFilter(_Resource):
    """A catalog-backed field's options limited to entries with these attribute values."""

    catalog_attribute_id: str
    values: tuple[str, ...] = ()


class CustomField(_Resource):
    """A custom field. Options come from ``list_custom_field_options``.

    Incidents embed every option of every field; they stay available raw in
    ``model_extra["options"]`` but are not modelled: three objects per option
    per incident made parsing a large page several times slower (GC).
    """

    id: str
    name: str
    description: str = ""
    field_type: str = ""
    fixed_filter: FixedFilter | None = None
    created_at: UTCDateTime | None = None
    updated_at: UTCDateTime | None = None


class IncidentTimestamp(_Resource):
    id: str
    name: str
    rank: int = 0


class Seats(_Resource):
    """A user's seats (each a ``Seat`` value; plain strings, so a new one parses)."""

    on_call: str = Seat.NONE
    response: str = Seat.NONE


class User(_Resource):
    """UserV2, or UserWithRolesV2 from ``/v2/users``: only the latter carries
    ``is_active`` and ``seats`` (None here when the body did not say)."""

    id: str
    name: str = ""
    email: str | None = None
    role: str | None = None
    slack_user_id: str | None = None
    is_active: bool | None = None
    seats: Seats | None = None


class NamedRef(_Resource):
    id: str
    name: str = ""


class Actor(_Resource):
    """Who did something: exactly one of the attributes is set."""

    api_key: NamedRef | None = None
    user: User | None = None
    workflow: NamedRef | None = None
    alert: dict[str, Any] | None = None

    @property
    def display_name(self) -> str:
        if self.user is not None:
            return self.user.name or self.user.id
        if self.api_key is not None:
            return f"API key {self.api_key.name}"
        if self.workflow is not None:
            return f"workflow {self.workflow.name}"
        return "alert" if self.alert is not None else "unknown"


# --- Incidents -------------------------------------------------------------------


CatalogEntryRef = NamedRef  # a catalog entry a custom field points at: the same shape


class CustomFieldValue(_Resource):
    """One value of a custom field entry; which attribute is set depends on the field type."""

    value_option: CustomFieldOption | None = None
    value_text: str | None = None
    value_link: str | None = None
    value_numeric: str | None = None
    value_catalog_entry: CatalogEntryRef | None = None

    @property
    def display(self) -> str:
        """A human-readable rendering, for logs and digests."""
        if self.value_option is not None:
            return self.value_option.value
        if self.value_catalog_entry is not None:
            return self.value_catalog_entry.name
        for text in (self.value_text, self.value_link, self.value_numeric):
            if text is not None:
                return text
        return ""


class CustomFieldEntry(_Resource):
    custom_field: CustomField
    values: tuple[CustomFieldValue, ...] = ()


class IncidentRoleAssignment(_Resource):
    role: IncidentRole
    assignee: User | None = None


class TimestampValue(_Resource):
    value: UTCDateTime | None = None


class IncidentTimestampValue(_Resource):
    incident_timestamp: IncidentTimestamp
    value: TimestampValue | None = None


class DurationMetric(_Resource):
    id: str
    name: str = ""


class DurationMetricValue(_Resource):
    """One duration metric of an incident; ``value_seconds`` only when ``status`` is success."""

    duration_metric: DurationMetric
    status: str = ""  # a DurationMetricStatus; always sent by the live API
    value_seconds: int | None = None


class Debrief(_Resource):
    id: str
    start_at: UTCDateTime | None = None
    end_at: UTCDateTime | None = None


class Incident(_Resource):
    """An incident (IncidentV2) with helpers for what rules ask of it."""

    id: str
    reference: str
    name: str
    summary: str | None = None
    incident_status: IncidentStatus
    severity: Severity | None = None
    incident_type: IncidentType | None = None
    visibility: str = "private"  # the API always sends it; if not, assume the safer one
    mode: str = "standard"
    created_at: UTCDateTime
    updated_at: UTCDateTime
    last_activity_at: UTCDateTime | None = None  # always sent by the live API (section 0)
    team_ids: tuple[str, ...] = ()  # always sent by the live API, [] when no team owns it
    creator: Actor | None = None
    custom_field_entries: tuple[CustomFieldEntry, ...] = ()
    incident_role_assignments: tuple[IncidentRoleAssignment, ...] = ()
    incident_timestamp_values: tuple[IncidentTimestampValue, ...] = ()
    duration_metrics: tuple[DurationMetricValue, ...] = ()
    debriefs: tuple[Debrief, ...] = ()
    postmortem_document_url: str | None = None
    postmortem_document_ids: tuple[str, ...] = ()
    permalink: str | None = None
    call_url: str | None = None
    slack_team_id: str = ""
    slack_channel_id: str = ""
    slack_channel_name: str | None = None
    slack_channel_url: str | None = None
    ms_teams_channel_url: str | None = None

    @property
    def status_category(self) -> str:
        return self.incident_status.category

    @property
    def is_private(self) -> bool:
        """Fail closed: only exactly "public" is public; a value the API adds later is private."""
        return self.visibility != Visibility.PUBLIC

    @property
    def severity_rank(self) -> int | None:
        return self.severity.rank if self.severity is not None else None

    def timestamp_value(self, name_or_id: str) -> datetime | None:
        """The value of an incident timestamp (by ID, or name ignoring case), if set."""
        folded = name_or_id.casefold()
        for item in self.incident_timestamp_values:
            ts = item.incident_timestamp
            if ts.id == name_or_id or ts.name.casefold() == folded:
                return item.value.value if item.value is not None else None
        return None

    def role_assignee(self, role_id: str) -> User | None:
        """Who holds a role (by ID, or name/shortform ignoring case); None if unassigned."""
        folded = role_id.casefold()
        for item in self.incident_role_assignments:
            role = item.role
            if role.id == role_id or folded in (role.name.casefold(), role.shortform.casefold()):
                return item.assignee
        return None

    def custom_field_values(self, field_id: str) -> tuple[CustomFieldValue, ...]:
        """The values of a custom field (by ID, or name ignoring case); empty if unset."""
        folded = field_id.casefold()
        for entry in self.custom_field_entries:
            field = entry.custom_field
            if field.id == field_id or field.name.casefold() == folded:
                return entry.values
        return ()

    def custom_field_option_ids(self, field_id: str) -> tuple[str, ...]:
        """The selected option IDs of a select field, for comparing with configured options."""
        return tuple(
            v.value_option.id for v in self.custom_field_values(field_id) if v.value_option
        )


class IncidentUpdate(_Resource):
    """A status or severity change (or a message) on an incident."""

    id: str
    incident_id: str
    new_incident_status: IncidentStatus
    new_severity: Severity | None = None
    message: str | None = None
    merged_into_incident_id: str | None = None
    updater: Actor | None = None
    created_at: UTCDateTime


class FollowUpPriority(_Resource):
    """A follow-up's priority or category: ``{id, name, rank, description?}``."""

    id: str
    name: str
    rank: int = 0
    description: str | None = None


FollowUpCategory = FollowUpPriority  # the same shape


class ExternalIssueReference(_Resource):
    issue_name: str = ""
    issue_permalink: str = ""
    provider: str = ""


class FollowUp(_Resource):
    """A follow-up (FollowUpV3, from ``GET /v3/follow_ups``).

    ``status`` is a plain string: a status the API adds later is neither done
    nor deleted, so it holds an incident open (fail closed) instead of breaking
    the listing. ``completed_at`` can be set on an outstanding follow-up (one
    created from an already-closed issue): only ``status`` says whether it is done.
    Only what the product reads is required; the sandbox's strict response
    check (tests/test_sandbox_required_keys.py) holds the API's required keys.
    """

    id: str
    incident_id: str
    title: str
    description: str | None = None
    status: str
    assignee: User | None = None
    assignee_team: NamedRef | None = None
    creator: Actor | None = None
    category: FollowUpCategory | None = None
    priority: FollowUpPriority | None = None
    external_issue_reference: ExternalIssueReference | None = None
    labels: tuple[str, ...] = ()
    created_at: UTCDateTime
    updated_at: UTCDateTime
    completed_at: UTCDateTime | None = None

    @property
    def is_outstanding(self) -> bool:
        return self.status == FollowUpStatus.OUTSTANDING

    @property
    def is_done(self) -> bool:
        """Completed, or decided against (not_doing): nothing is left to do."""
        return self.status in (FollowUpStatus.COMPLETED, FollowUpStatus.NOT_DOING)

    @property
    def is_deleted(self) -> bool:
        """Deleted in the app: no longer a follow-up at all, neither open nor done."""
        return self.status == FollowUpStatus.DELETED


class PaginationMeta(_Resource):
    page_size: int | None = None
    after: str | None = None
    total_record_count: int | None = None


# --- parsing response bodies ---------------------------------------------------


@functools.cache
def envelope(key: str, model: type[BaseModel], many: bool) -> type[BaseModel]:
    """The response wrapper, e.g. ``{"incidents": [...], "pagination_meta": {...}}``."""
    item: Any = list[model] if many else model  # type: ignore[valid-type]
    fields: dict[str, Any] = {key: (item, ...)}
    if many:
        fields["pagination_meta"] = (PaginationMeta | None, None)
    name = f"_{key.title().replace('_', '')}Envelope"
    return create_model(name, __config__=ConfigDict(extra="ignore"), **fields)


def parse_without_gc(wrapper: type[ModelT], content: bytes) -> ModelT:
    """Parse a list page with the cyclic GC paused.

    A page of 250 incidents is ~25,000 container objects. With the collector
    on, allocating them triggers dozens of young collections, and enough of
    those trigger full ones over everything already held. Measured through
    ``iter_incidents`` on 10,000 sandbox-shaped incidents: 2.2 s with GC,
    1.0 s paused. Pausing for one page (a few ms) only postpones collection;
    GC is left alone if something else already turned it off.
    """
    if not gc.isenabled():
        return wrapper.model_validate_json(content)
    gc.disable()
    try:
        return wrapper.model_validate_json(content)
    finally:
        gc.enable()


@dataclass(frozen=True)
class Malformed:
    """An item left out of a page: where it was, its ID if it had one, what was wrong."""

    index: int
    id: str | None
    problems: tuple[str, ...]  # e.g. "created_at: Field required"


@dataclass(frozen=True)
class LenientPage(Generic[ModelT]):
    items: list[ModelT]
    pagination_meta: PaginationMeta | None
    malformed: list[Malformed]


def parse_page_leniently(key: str, model: type[ModelT], content: bytes) -> LenientPage[ModelT]:
    """A list page whose malformed items are left out (and described) instead of failing it.

    One incident missing a field must not fail the whole page, which would be
    retried as transient and block every rule. The whole page is parsed at once
    (the fast path); only when that fails on items, and only on items, are they
    parsed one by one. A broken envelope still raises the ValidationError, and
    so does a page where no item of several can be read: that is the API's
    shape changing, and skipping everything would make cycles "succeed" while
    doing nothing.
    """
    wrapper = envelope(key, model, many=True)
    try:
        parsed = parse_without_gc(wrapper, content)
    except ValidationError as exc:
        bad = _problems_by_item(exc, key)
        if bad is None:
            raise
        page = _one_by_one(key, model, content, bad)
        if not page.items and len(page.malformed) > 1:
            raise
        return page
    return LenientPage(getattr(parsed, key), parsed.pagination_meta, [])  # type: ignore[attr-defined]


def _problems_by_item(exc: ValidationError, key: str) -> dict[int, list[str]] | None:
    """What is wrong with each item, by position; None when something else is broken too."""
    bad: dict[int, list[str]] = {}
    for error in exc.errors(include_input=False, include_url=False):
        loc = error["loc"]
        if len(loc) < 2 or loc[0] != key or not isinstance(loc[1], int):
            return None
        where = ".".join(str(part) for part in loc[2:]) or "<the whole item>"
        bad.setdefault(loc[1], []).append(f"{where}: {error['msg']}")
    return bad


def _one_by_one(
    key: str, model: type[ModelT], content: bytes, bad: dict[int, list[str]]
) -> LenientPage[ModelT]:
    """The good items re-parsed together (JSON mode and GC paused, as on the fast path)."""
    body = json.loads(content)
    raw_meta = body.get("pagination_meta")
    meta = PaginationMeta.model_validate(raw_meta) if raw_meta is not None else None
    good: list[Any] = []
    malformed: list[Malformed] = []
    for index, raw in enumerate(body[key]):
        if index in bad:
            ident = raw.get("id") if isinstance(raw, dict) else None
            ident = ident if isinstance(ident, str) and ident else None
            malformed.append(Malformed(index, ident, tuple(bad[index])))
        else:
            good.append(raw)
    wrapper = envelope(key, model, many=True)
    items = getattr(parse_without_gc(wrapper, json.dumps({key: good}).encode()), key)
    return LenientPage(items, meta, malformed)
