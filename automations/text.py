"""Upstream free text made fit for one line: incident names, catalog names, reasons.

Anything the API sends can be huge (a 1 MB incident name) or hold line breaks
that would split a log line or a mail header in two (or forge one).
``one_line`` is the one place that bounds it: plan output, log lines, reasons,
the ledger (through ``PlannedAction``) and digests all use it.
"""

from __future__ import annotations

import re
import unicodedata

# Incident names, references and catalog names (severities, statuses, options) in
# plan output, logs and reasons.
NAME_LIMIT = 120
# A whole reason: several names plus the rule's own words.
REASON_LIMIT = 500
ELLIPSIS = "…"
_SPACES = re.compile(r"\s+")
# Control, format (e.g. bidi overrides) and line/paragraph separator characters.
_NOT_ON_ONE_LINE = ("Cc", "Cf", "Zl", "Zp")


def _tidy(text: str) -> bool:
    """No run of spaces, none at either end (isprintable() already excludes other spaces)."""
    return "  " not in text and text[0] != " " and text[-1] != " "


def one_line(text: str | None, limit: int = NAME_LIMIT) -> str:
    """Fold CR/LF, tabs and other control or separator characters to spaces; cut at ``limit``
    characters, an ellipsis marking the cut."""
    if not text:
        return ""
    if len(text) <= limit and text.isprintable() and _tidy(text):
        return text  # the usual case, at C speed: nothing to fold, collapse or cut
    # Only the start can show: never fold a megabyte character by character.
    cut = len(text) > limit * 4
    if cut:
        text = text[: limit * 4]
    cleaned = "".join(" " if unicodedata.category(ch) in _NOT_ON_ONE_LINE else ch for ch in text)
    cleaned = _SPACES.sub(" ", cleaned).strip()
    if len(cleaned) > limit or cut:
        cleaned = cleaned[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS
    return cleaned
