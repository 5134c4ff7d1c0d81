"""Upstream free text made fit for one line: incident names, catalog names, reasons.

Anything the API sends can be huge (a 1 MB incident name) or hold line breaks
that would split a log line in two (or forge one). ``clip`` is the one place
that bounds it; plan output, log lines, reasons and the ledger all go through
it, through ``PlannedAction`` or where they print such text themselves.
"""

from __future__ import annotations

import re

# Incident names, references and catalog names (severities, statuses, options).
NAME_LIMIT = 120
# A whole reason: several clipped names plus the rule's own words.
REASON_LIMIT = 500
ELLIPSIS = "…"
# Line and paragraph separators a terminal or log viewer honours, and other controls.
_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")


def clip(text: str, limit: int = NAME_LIMIT) -> str:
    """``text`` on one line, at most ``limit`` characters (an ellipsis marks a cut)."""
    cut = len(text) > limit * 4
    flat = _BREAKS.sub(" ", text[: limit * 4] if cut else text)  # never scan a megabyte
    if len(flat) <= limit and not cut:
        return flat
    return flat[: limit - len(ELLIPSIS)] + ELLIPSIS
