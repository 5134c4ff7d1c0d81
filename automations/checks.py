"""The whole file, checked at once before anything acts (validate, once, run, a reload).

Kept apart from runtime.py so ``validate --offline`` imports neither the API
client nor the ledger: it checks the file and the digest templates only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from automations.config import Config
from automations.errors import Problems

if TYPE_CHECKING:
    from automations.catalog import Catalog
    from automations.incidentio import IncidentIOClient
    from automations.rules.base import AnyRule
    from automations.settings import Environment


def check_config(
    config: Config,
    catalog: Catalog | None,
    environment: Environment | None,
    *,
    client: IncidentIOClient | None = None,
) -> list[AnyRule]:
    """Every problem of the file in one ConfigError; the enabled rules (none without a catalog).

    Rules' and digests' names (unless ``catalog`` is None: ``validate --offline``),
    digest and channel templates, and, given an ``environment``, the SMTP password, the
    channels' secrets and the webhook signing secrets; given a ``client``, the escalation
    paths channels name and the schedules digests name.
    """
    problems = Problems()
    rules: list[AnyRule] = []
    if catalog is not None:
        from automations.runtime import collect_rules

        rules = collect_rules(config, catalog, None, problems)
    if config.digests:
        if catalog is not None:
            from automations.digest.service import resolve_digests

            resolve_digests(config, catalog, problems)
            if client is not None:  # the digests' on-call schedules, by name
                from automations.digest.oncall_fetch import resolve_schedules

                with problems.collect():
                    resolve_schedules(None, client, enumerate(config.digests))
        else:
            from automations.digest.templates import check_templates

            check_templates(config, problems)
    if config.channels:
        import os

        from automations.notify.channels.build import check_channels

        environ = os.environ if environment is not None else None
        check_channels(config, problems, environ=environ, client=client)
    if config.webhooks.enabled and environment is not None:
        import os

        from automations.webhooks.config import webhook_secrets

        with problems.collect():
            webhook_secrets(os.environ)
    if environment is not None:
        from automations.digest.config import smtp_password_problem

        with problems.collect():
            problem = smtp_password_problem(config.smtp, environment.smtp_password())
            if problem is not None:
                problems.add(problem)
    problems.raise_if_any(config.path)
    return rules
