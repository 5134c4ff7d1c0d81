"""The token bucket: paces requests at the configured rate, across threads and clients."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from itertools import count

import httpx
import pytest
import stamina

from automations.incidentio import TokenBucket
from tests.openapi_conformance import Conformance
from tests.test_client_models import FakeTime, Recorder, incident, make_client, ok


def test_default_burst_is_one_second() -> None:
    """1000/min refills ~16.7/s; an idle daemon may burst one second's worth, not the minute's."""
    bucket = TokenBucket()
    assert bucket.capacity == 17
    assert bucket.rate_per_minute == 1000


@pytest.mark.parametrize(("rate", "burst", "n"), [(600, 10, 100), (1200, 1, 41), (60, 5, 5)])
def test_n_acquires_take_the_expected_time(rate: int, burst: int, n: int) -> None:
    """After the burst, each token costs 60/rate seconds of (fake) time."""
    fake = FakeTime()
    bucket = TokenBucket(rate, burst=burst, clock=fake.monotonic, sleep=fake.bucket_sleep)
    start = fake.now
    for _ in range(n):
        bucket.acquire()
    expected = max(0, n - burst) * 60 / rate
    assert fake.now - start == pytest.approx(expected)
    assert bucket.waits == max(0, n - burst)
    assert bucket.waited_seconds == pytest.approx(expected)


def test_refill_is_capped_at_the_burst() -> None:
    """A long idle period refills to the burst size, no more."""
    fake = FakeTime()
    bucket = TokenBucket(600, burst=3, clock=fake.monotonic, sleep=fake.bucket_sleep)
    for _ in range(3):
        bucket.acquire()
    fake.now += 3600
    assert bucket.available == 3
    for _ in range(4):
        bucket.acquire()
    assert fake.bucket_sleeps == [pytest.approx(0.1)]


def test_defer_pauses_everyone() -> None:
    """defer(s) hands out no token for s seconds (the server said 429)."""
    fake = FakeTime()
    bucket = TokenBucket(600, burst=10, clock=fake.monotonic, sleep=fake.bucket_sleep)
    bucket.defer(2.0)
    assert bucket.acquire() == pytest.approx(2.1)
    bucket.defer(0)  # no-op
    bucket.defer(-1)
    assert bucket.acquire() == pytest.approx(0.1)


def test_invalid_configuration() -> None:
    """Rates and bursts must be positive."""
    with pytest.raises(ValueError, match="rate_per_minute"):
        TokenBucket(0)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(60, burst=0)


def test_threads_each_get_their_own_slot() -> None:
    """Under contention every reservation is distinct: waits are exactly 1..N-burst slots."""
    waits: list[float] = []
    lock = threading.Lock()

    def record(seconds: float) -> None:
        with lock:
            waits.append(seconds)

    bucket = TokenBucket(60, burst=4, clock=lambda: 0.0, sleep=record)  # time stands still
    threads = [
        threading.Thread(target=lambda: [bucket.acquire() for _ in range(25)]) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(round(w, 6) for w in waits) == [float(k) for k in range(1, 8 * 25 - 4 + 1)]
    assert bucket.waits == 196


def test_real_clock_smoke() -> None:
    """With the real clock, 4 threads x 5 acquires at 100/s (burst 4) take at least 0.16s."""
    bucket = TokenBucket(6000, burst=4)
    started = time.monotonic()
    threads = [
        threading.Thread(target=lambda: [bucket.acquire() for _ in range(5)]) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.monotonic() - started >= (20 - 4) / 100 - 0.01


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTime]:
    fake = FakeTime()
    monkeypatch.setattr(time, "sleep", fake.sleep)
    with stamina.set_testing(False):
        yield fake


def test_every_attempt_takes_a_token_and_clients_share_one_bucket(
    openapi: Conformance, no_sleep: FakeTime
) -> None:
    """Retries take tokens too, and two clients given one bucket draw from the same tokens."""
    acquired = count()

    class Counting(TokenBucket):
        def acquire(self, stop: threading.Event | None = None) -> float:
            next(acquired)
            return super().acquire(stop)

    bucket = Counting(60_000, burst=1000, clock=no_sleep.monotonic, sleep=no_sleep.bucket_sleep)
    calls = count()

    def flaky(request: httpx.Request) -> httpx.Response:
        if next(calls) % 2 == 0:
            return httpx.Response(503, text="busy")
        return ok({"incident": incident(1)})

    one = make_client(Recorder(openapi, flaky, check_responses=False), rate_limiter=bucket)
    two = make_client(Recorder(openapi, flaky, check_responses=False), rate_limiter=bucket)
    one.get_incident("1")
    two.get_incident("1")
    assert next(acquired) == 4  # 2 calls x (503 + 200)
    assert one.rate_limiter is two.rate_limiter
