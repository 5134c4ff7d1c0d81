"""Email digests: what happened, rendered with Jinja, delivered once through an outbox.

The data flows top to bottom, one module per step::

    config.py     [smtp] and [[digests]] as pydantic models
    schedule.py   cron occurrences -> the period a digest is for; catch-up after downtime
    fetch.py      the API queries a digest needs (I/O)
    content.py    incidents + catalog + ledger events -> DigestData (pure)
    render.py     DigestData -> subject, text and HTML (Jinja, CSS inlined, size budget)
    message.py    -> one multipart/alternative RFC 5322 message, headers made safe
    outbox.py     queue once per (digest, period), send with backoff until sent or expired
    delivery.py   SMTP (smtplib), errors split into transient and permanent
    events.py     delivery listeners (metrics hook)
    service.py    the composition the daemon and the CLI use

Importing this package is cheap: Jinja, css-inline and smtplib load only when used.
"""
