"""A realistic organisation and incident history, identical for the same seed.

Every random choice comes from ``random.Random`` instances derived from the
seed (never the global generator), and IDs do not depend on the wall clock.
Incident times are offsets from ``anchor`` (the sandbox clock at reset), so
pass a fixed ``now`` to reset when byte-identical output matters.

``catalog`` builds the organisation; ``history`` the incidents (each one from
``incidents``, its age from ``ages``) and their follow-ups; ``oncall`` the
schedules and escalation paths. Each draws from its own random stream.
"""
