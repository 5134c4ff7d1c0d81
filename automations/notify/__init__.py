"""Notifications: channels (email, webhook, apprise, escalation), the outbox that delivers
them exactly once, and the notices they carry."""
