"""Token buckets per client and endpoint, on a fake clock (pure logic, no server)."""

from __future__ import annotations

import pytest

from streamapp.settings import Settings
from streamapp.web.ratelimit import (
    PREDICT,
    TELEMETRY,
    TRAIN,
    Limit,
    RateLimiter,
    TokenBucket,
    retry_after,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_one_request_per_refill() -> None:
    bucket = TokenBucket(Limit(rate=2.0, burst=3), tokens=3.0, updated=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # one token every 0.5 s
    assert bucket.take(0.25) == pytest.approx(0.25)
    assert bucket.take(0.5) == 0.0
    assert bucket.take(100.0) == 0.0 and bucket.tokens == pytest.approx(2.0)  # capped at burst


def test_clients_and_endpoints_have_their_own_buckets() -> None:
    clock = Clock()
    limiter = RateLimiter({PREDICT: Limit(1.0, 2), TRAIN: Limit(0.1, 1)}, clock=clock)
    assert [limiter.check("a", PREDICT) for _ in range(2)] == [0.0, 0.0]
    assert limiter.check("a", PREDICT) == pytest.approx(1.0)
    assert limiter.check("b", PREDICT) == 0.0  # another client
    assert limiter.check("a", TRAIN) == 0.0  # another endpoint
    assert limiter.check("a", TRAIN) == pytest.approx(10.0)
    clock.now += 1.0
    assert limiter.check("a", PREDICT) == 0.0


def test_a_zero_rate_or_an_unknown_endpoint_is_not_limited() -> None:
    limiter = RateLimiter({PREDICT: Limit(0.0, 1)}, clock=Clock())
    assert all(limiter.check("a", PREDICT) == 0.0 for _ in range(100))
    assert all(limiter.check("a", "elsewhere") == 0.0 for _ in range(100))


def test_tracked_clients_are_bounded_and_the_least_recent_is_forgotten() -> None:
    clock = Clock()
    limiter = RateLimiter({PREDICT: Limit(0.001, 1)}, max_clients=2, clock=clock)
    for client in ("a", "b"):
        assert limiter.check(client, PREDICT) == 0.0
    assert limiter.check("a", PREDICT) > 0  # a is now the most recent
    assert limiter.check("c", PREDICT) == 0.0  # forgets b, the least recent
    assert limiter.check("a", PREDICT) > 0  # a was kept: still limited
    assert limiter.check("b", PREDICT) == 0.0  # b starts again with a full bucket
    assert len(limiter._buckets[PREDICT]) == 2


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert retry_after(0.001) == "1"
    assert retry_after(1.0) == "1"
    assert retry_after(1.01) == "2"
    assert retry_after(9.5) == "10"


def test_limits_come_from_the_settings() -> None:
    settings = Settings(
        http_rate_predict_per_s=4,
        http_rate_predict_burst=8,
        http_rate_train_per_s=0,
        http_rate_telemetry_burst=9,
        http_rate_max_clients=7,
    )
    limiter = RateLimiter.from_settings(settings)
    assert limiter.limits[PREDICT] == Limit(4.0, 8)
    assert not limiter.limits[TRAIN].enabled
    assert limiter.limits[TELEMETRY] == Limit(100.0, 9)
    assert limiter.max_clients == 7
