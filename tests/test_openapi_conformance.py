"""The conformance checker itself: it must reject what the real API would not send."""

from __future__ import annotations

import pytest

from tests.openapi_conformance import Conformance, decode_deep_object


def test_decode_deep_object_nests_and_repeats() -> None:
    """Bracketed keys nest and repeated keys collect every value."""
    decoded = decode_deep_object(
        [
            ("status_category[one_of]", "live"),
            ("status_category[one_of]", "learning"),
            ("custom_field[F1][one_of]", "O1"),
            ("page_size", "250"),
        ]
    )
    assert decoded == {
        "status_category": {"one_of": ["live", "learning"]},
        "custom_field": {"F1": {"one_of": ["O1"]}},
        "page_size": "250",
    }


def test_rejects_unknown_fields_and_accepts_hidden_required(openapi: Conformance) -> None:
    """Extra properties fail; hidden required attributes (not in properties) are not demanded."""
    severity = {
        "id": "01H",
        "name": "Minor",
        "description": "",
        "rank": 1,
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
    }
    openapi.validate_response("GET", "/v1/severities", 200, {"severities": [severity]})
    with pytest.raises(AssertionError, match="Additional properties"):
        openapi.validate_response(
            "GET", "/v1/severities", 200, {"severities": [{**severity, "colour": "red"}]}
        )


def test_request_checks(openapi: Conformance) -> None:
    """Unknown parameters, too-large pages and bodies missing required keys are caught."""
    openapi.validate_request(
        "GET", "/v2/incidents", [("page_size", "250"), ("sort_by", "created_at_oldest_first")]
    )
    with pytest.raises(AssertionError, match="unknown query parameter"):
        openapi.validate_request("GET", "/v2/incidents", [("status_categroy[one_of]", "live")])
    with pytest.raises(AssertionError, match="page_size"):
        openapi.validate_request("GET", "/v2/incidents", [("page_size", "501")])
    with pytest.raises(AssertionError, match="notify_incident_channel"):
        openapi.validate_request("POST", "/v2/incidents/01H/actions/edit", body={"incident": {}})
    openapi.validate_request(
        "POST",
        "/v2/incidents/01H/actions/edit",
        body={"incident": {"severity_id": "01S"}, "notify_incident_channel": False},
    )
