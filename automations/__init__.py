"""Run incident.io automations without Slack."""

__version__ = "0.1.0"
