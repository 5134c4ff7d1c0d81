"""Counts of API requests, for the health endpoint, logs and tests.

Keyed by route template (``/v2/incidents/{id}``), never by concrete path, so
the number of series stays small however many incidents there are.
"""

from __future__ import annotations

import threading
from collections import Counter

Status = int | str  # an HTTP status, or "error" when no response arrived

# Upper bounds (seconds) of the latency buckets exported as a Prometheus histogram.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class RequestCounter:
    """Thread-safe counts by (method, route template, status or "error")."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, Status]] = Counter()
        self._malformed: Counter[tuple[str, str]] = Counter()  # items skipped, by (method, route)
        # (method, route) -> [count per bucket (+Inf last), sum of seconds]
        self._latency: dict[tuple[str, str], tuple[list[int], list[float]]] = {}

    def record(self, method: str, route: str, status: Status, seconds: float | None = None) -> None:
        with self._lock:
            self._counts[(method.upper(), route, status)] += 1
            if seconds is not None:
                buckets, total = self._latency.setdefault(
                    (method.upper(), route), ([0] * (len(LATENCY_BUCKETS) + 1), [0.0])
                )
                index = next(
                    (i for i, bound in enumerate(LATENCY_BUCKETS) if seconds <= bound),
                    len(LATENCY_BUCKETS),
                )
                buckets[index] += 1
                total[0] += seconds

    def record_malformed(self, method: str, route: str, items: int = 1) -> None:
        """Items a page carried that could not be read and were left out."""
        with self._lock:
            self._malformed[(method.upper(), route)] += items

    def malformed(self) -> int:
        with self._lock:
            return sum(self._malformed.values())

    def malformed_by_route(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._malformed)

    def latency(self) -> dict[tuple[str, str], tuple[list[int], float]]:
        """Per (method, route): request counts per bucket of LATENCY_BUCKETS (+Inf last), sum."""
        with self._lock:
            return {key: (list(b), t[0]) for key, (b, t) in self._latency.items()}

    def counts(self) -> dict[tuple[str, str, Status], int]:
        with self._lock:
            return dict(self._counts)

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
