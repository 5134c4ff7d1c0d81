"""incident.io webhooks: verified deliveries drive evaluation within seconds.

    config.py    ``[webhooks]`` and the signing secrets (``AUTOMATIONS_WEBHOOK_SECRET``)
    events.py    which event types we act on, and the incident (or follow-up) each names
    verify.py    Standard Webhooks verification (the ``standardwebhooks`` library)
    receiver.py  one POST: size limit, verify, record in the ledger, answer
    worker.py    the queue's consumer: re-read each incident, run the rules (daemon's lock)
    service.py   built by the daemon: receiver for the listener, worker thread

Polling stays the safety net: a delivery lost, refused or failed is caught by the
next cycle of each rule. Every command imports config.py (the table's model); the
rest, and the ``standardwebhooks`` library, only a daemon with ``[webhooks]`` enabled.
"""
