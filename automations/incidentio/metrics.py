"""Counts of API requests, for the health endpoint, logs and tests.

Keyed by route template (``/v2/incidents/{id}``), never by concrete path, so
the number of series stays small however many incidents there are.
"""

from __future__ import annotations

import threading
from collections import Counter

Status = int | str  # an HTTP status, or "error" when no response arrived


class RequestCounter:
    """Thread-safe counts by (method, route template, status or "error")."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, Status]] = Counter()

    def record(self, method: str, route: str, status: Status) -> None:
        with self._lock:
            self._counts[(method.upper(), route, status)] += 1

    def count(
        self, method: str | None = None, route: str | None = None, status: Status | None = None
    ) -> int:
        """Requests matching every given part (all requests when none is given)."""
        with self._lock:
            return sum(
                n
                for (m, r, s), n in self._counts.items()
                if (method is None or m == method.upper())
                and (route is None or r == route)
                and (status is None or s == status)
            )

    def total(self) -> int:
        return self.count()

    def by_route(self) -> dict[str, int]:
        """Requests per "METHOD route", whatever their outcome."""
        out: Counter[str] = Counter()
        with self._lock:
            for (method, route, _), n in self._counts.items():
                out[f"{method} {route}"] += n
        return dict(sorted(out.items()))

    def snapshot(self) -> dict[str, dict[str, int]]:
        """{"METHOD route": {"200": n, "429": n, "error": n}}, JSON-ready."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for (method, route, status), n in sorted(self._counts.items(), key=str):
                out.setdefault(f"{method} {route}", {})[str(status)] = n
        return out

    def __repr__(self) -> str:
        return f"RequestCounter(total={self.total()})"
