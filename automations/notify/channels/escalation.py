"""The escalation channel: page an incident.io escalation path (or users) about a notice.

``POST /v2/escalations`` with the idempotency key ``{key}/{channel}``: a retry, or a
second process sending the same notification, returns the escalation already made
instead of paging twice; two escalation channels for one event still page each path.
A path is named in the file and resolved to its ID at start-up (build.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from automations.notify.channels.api_errors import api_outcome
from automations.notify.notice import TEST, Notice
from automations.notify.render import NoticeTemplates
from automations.text import one_line

if TYPE_CHECKING:
    from automations.incidentio import IncidentIOClient

TITLE_LIMIT = 200


class EscalationSender:
    """Creates one escalation per notification, linked to its incident."""

    def __init__(
        self,
        channel: str,
        client: IncidentIOClient,
        templates: NoticeTemplates,
        *,
        escalation_path_id: str | None = None,
        user_ids: Sequence[str] | None = None,
    ) -> None:
        if (escalation_path_id is None) == (user_ids is None):
            raise ValueError("give exactly one of escalation_path_id or user_ids")
        self.channel = channel
        self.client = client
        self.templates = templates
        self.escalation_path_id = escalation_path_id
        self.user_ids = None if user_ids is None else tuple(user_ids)

    def __repr__(self) -> str:
        target = self.escalation_path_id or f"{len(self.user_ids or ())} users"
        return f"<EscalationSender {self.channel} -> {target}>"

    def send(self, notice: Notice, *, key: str) -> None:
        # A test's incident is made up: linking it would be refused (no such incident).
        linked = notice.incident is not None and notice.type != TEST
        with api_outcome(f"escalation channel {self.channel}"):
            self.client.create_escalation(
                idempotency_key=f"{key}/{self.channel}",
                title=one_line(self.templates.render("title", notice), TITLE_LIMIT),
                description=self.templates.render("md", notice),
                escalation_path_id=self.escalation_path_id,
                user_ids=self.user_ids,
                incident_id=notice.incident.id if linked and notice.incident else None,
            )
