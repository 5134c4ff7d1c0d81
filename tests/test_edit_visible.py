"""Whether an edit that may have landed shows on the re-read incident (reconcile's question).

Pure: ``edit_visible`` (and ``unrecorded_edit_overwritten``, what reconcile asks next)
from automations/reconcile.py, on incidents built in memory; no HTTP, no ledger. Bodies are
built the way rules build them, from ``IncidentEdit``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from automations.incidentio import (
    CustomFieldEntryPayload,
    Incident,
    IncidentEdit,
    IncidentRoleAssignmentPayload,
    UserReference,
)
from automations.reconcile import edit_visible, unrecorded_edit_overwritten
from tests.factories import NOW, incident

NO_UPDATES: list[dict[str, Any]] = []


def body(**fields: Any) -> dict[str, Any]:
    """The exact POST body for an edit of ``fields``, as PlannedAction.request_body builds it."""
    return {"incident": IncidentEdit(**fields).payload(), "notify_incident_channel": False}


def options(field_id: str, *option_ids: str) -> dict[str, Any]:
    """An edit body setting a select field to ``option_ids`` (none: clearing it)."""
    return body(custom_field_entries=(CustomFieldEntryPayload.options(field_id, *option_ids),))


# -- a no-op edit ---------------------------------------------------------------------------


def test_an_empty_body_never_counts_as_landed() -> None:
    """Nothing to look for (a notify-only action, a lost body): never 'found applied'."""
    item = incident()
    assert edit_visible({}, item, NO_UPDATES) is False
    assert edit_visible({"incident": {}}, item, NO_UPDATES) is False
    assert edit_visible(body(), item, NO_UPDATES) is False


# -- severity -------------------------------------------------------------------------------


def test_severity_visible_on_the_incident() -> None:
    """The incident has the severity the edit set."""
    assert edit_visible(body(severity_id="SEV2"), incident(severity="Major"), NO_UPDATES)


def test_severity_not_there_and_not_in_the_updates_did_not_land() -> None:
    """Still at the old severity and no update moved it: the edit did not land."""
    assert not edit_visible(body(severity_id="SEV2"), incident(severity="Minor"), NO_UPDATES)


def test_severity_undone_since_is_found_in_the_updates() -> None:
    """Raised then lowered again by a human: the update after the claim shows it landed."""
    updates = [
        {"severity_id": "SEV2", "incident_status_id": "ST-INV"},
        {"severity_id": "SEV1", "incident_status_id": "ST-INV"},
    ]
    assert edit_visible(body(severity_id="SEV2"), incident(severity="Minor"), updates)


def test_other_severity_moves_in_the_updates_do_not_count() -> None:
    """Updates that set other severities (or none) are no trace of this edit."""
    updates: list[dict[str, Any]] = [
        {"severity_id": "SEV3", "incident_status_id": "ST-INV"},
        {"severity_id": None, "incident_status_id": "ST-FIX"},
    ]
    assert not edit_visible(body(severity_id="SEV2"), incident(severity="Minor"), updates)


def test_severity_on_an_incident_without_one() -> None:
    """An incident with no severity shows no severity edit, unless an update recorded it."""
    item = incident(severity=None)
    assert not edit_visible(body(severity_id="SEV2"), item, NO_UPDATES)
    assert edit_visible(body(severity_id="SEV2"), item, [{"severity_id": "SEV2"}])


# -- status ---------------------------------------------------------------------------------


def test_status_visible_on_the_incident() -> None:
    """The incident is in the status the edit set."""
    assert edit_visible(body(incident_status_id="ST-CLOSED"), incident(status="Closed"), [])


def test_status_not_there_and_not_in_the_updates_did_not_land() -> None:
    """Still in the old status, no update moved it: not landed."""
    item = incident(status="Documenting")
    assert not edit_visible(body(incident_status_id="ST-CLOSED"), item, NO_UPDATES)


def test_status_reopened_since_is_found_in_the_updates() -> None:
    """Closed by the edit, reopened by a human: the update still shows the close."""
    item = incident(status="Investigating")
    updates = [{"severity_id": "SEV1", "incident_status_id": "ST-CLOSED"}]
    assert edit_visible(body(incident_status_id="ST-CLOSED"), item, updates)


# -- custom fields --------------------------------------------------------------------------


def test_a_select_field_set_to_its_option() -> None:
    """The field holds exactly the option the edit chose."""
    item = incident(fields={"Phase": "Closed"})
    assert edit_visible(options("CF-PHASE", "PH-CLOSED"), item, NO_UPDATES)


def test_a_select_field_with_another_option_did_not_land() -> None:
    """The field holds some other option: the edit is not there (updates do not record it)."""
    item = incident(fields={"Phase": "Active"})
    updates = [{"severity_id": "SEV1", "incident_status_id": "ST-INV"}]
    assert not edit_visible(options("CF-PHASE", "PH-CLOSED"), item, updates)


def test_a_select_field_never_set_did_not_land() -> None:
    """No entry for the field at all: not landed."""
    assert not edit_visible(options("CF-PHASE", "PH-CLOSED"), incident(), NO_UPDATES)


def test_a_multi_select_field_matches_in_any_order() -> None:
    """Several options: the same set in another order is visible; a subset is not."""
    data = incident(fields={"Team": "Payments"}).model_dump(mode="json")
    (entry,) = data["custom_field_entries"]
    entry["values"].append(
        {"value_option": {**entry["values"][0]["value_option"], "id": "OPT-PLATFORM"}}
    )
    item = Incident.model_validate(data)
    assert edit_visible(options("CF-TEAM", "OPT-PLATFORM", "OPT-PAYMENTS"), item, NO_UPDATES)
    assert not edit_visible(options("CF-TEAM", "OPT-PAYMENTS"), item, NO_UPDATES)


def test_clearing_a_field_is_visible_as_an_empty_field() -> None:
    """An edit with no values clears the field: visible when the field is empty."""
    assert edit_visible(options("CF-PHASE"), incident(), NO_UPDATES)
    assert not edit_visible(options("CF-PHASE"), incident(fields={"Phase": "Active"}), [])


def test_only_the_edited_field_is_compared() -> None:
    """Other fields' values do not matter, and every edited field must match."""
    item = incident(fields={"Phase": "Closed", "Team": "Payments"})
    assert edit_visible(options("CF-PHASE", "PH-CLOSED"), item, NO_UPDATES)
    both = body(
        custom_field_entries=(
            CustomFieldEntryPayload.options("CF-PHASE", "PH-CLOSED"),
            CustomFieldEntryPayload.options("CF-TEAM", "OPT-PLATFORM"),
        )
    )
    assert not edit_visible(both, item, NO_UPDATES)


# -- several fields, other fields -----------------------------------------------------------


def test_every_edited_field_must_show() -> None:
    """Severity landed but status did not: the edit as a whole is not visible."""
    item = incident(severity="Major", status="Investigating")
    assert edit_visible(body(severity_id="SEV2", incident_status_id="ST-INV"), item, [])
    assert not edit_visible(body(severity_id="SEV2", incident_status_id="ST-FIX"), item, [])


def test_a_plain_field_is_compared_as_it_is() -> None:
    """Name, summary, call URL: the incident's attribute equals the value sent."""
    item = incident()
    assert edit_visible(body(name=item.name), item, NO_UPDATES)
    assert not edit_visible(body(name="Renamed"), item, NO_UPDATES)
    assert not edit_visible(body(call_url="https://call.example.com/x"), item, NO_UPDATES)


def test_a_role_assignment_is_never_found_so_reconcile_leaves_it() -> None:
    """A role assignment is not recognised on the incident (the body's shape differs from the
    incident's), so it is never 'found applied'; it is not in the updates either, so once the
    incident changed after the claim reconcile leaves it (skipped) rather than resend it."""
    item = incident(lead=True)  # ROLE-LEAD held by U1, as the edit asked
    assignment = IncidentRoleAssignmentPayload(
        incident_role_id="ROLE-LEAD", assignee=UserReference(id="U1")
    )
    edit = body(incident_role_assignments=(assignment,))
    assert not edit_visible(edit, item, NO_UPDATES)
    claimed_before_the_change = item.updated_at - timedelta(minutes=1)
    assert unrecorded_edit_overwritten(edit, item, claimed_before_the_change)
    assert not unrecorded_edit_overwritten(edit, item, NOW)


def test_a_recorded_field_is_never_left_as_overwritten() -> None:
    """Severity and status leave updates behind: reconcile judges them by the updates alone."""
    item = incident(severity="Minor")
    claimed = item.updated_at - timedelta(hours=1)
    assert not unrecorded_edit_overwritten(body(severity_id="SEV2"), item, claimed)
    assert unrecorded_edit_overwritten(options("CF-PHASE", "PH-CLOSED"), item, claimed)
