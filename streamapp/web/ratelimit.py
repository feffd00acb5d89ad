"""Token-bucket rate limits of the expensive HTTP endpoints, per client and endpoint.

A bucket holds up to `burst` tokens and refills at `rate` tokens a second; a request
takes one, and a request that finds none is refused with the seconds until one is back
(the 429's `Retry-After`). Each endpoint keeps the buckets of its `max_clients` most
recently seen clients: a flood of distinct addresses cannot grow the worker's memory,
and a client forgotten that way only comes back with a full bucket. Pure logic with an
injected clock, so it is tested without a server.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from streamapp.settings import Settings

PREDICT = "predict"
TRAIN = "train"
TELEMETRY = "telemetry"
LIMITED_ENDPOINTS = (PREDICT, TRAIN, TELEMETRY)


@dataclass(frozen=True, slots=True)
class Limit:
    """`rate` requests a second on average, `burst` at once; a rate of 0 means no limit."""

    rate: float
    burst: int

    @property
    def enabled(self) -> bool:
        return self.rate > 0


@dataclass(slots=True)
class TokenBucket:
    """One client's tokens for one endpoint, refilled lazily when it is next used."""

    limit: Limit
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """0.0 when a token was taken, else the seconds until one will be there."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.limit.burst), self.tokens + elapsed * self.limit.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.limit.rate


class RateLimiter:
    """The buckets of every (client, endpoint) pair a worker has recently seen."""

    def __init__(
        self,
        limits: Mapping[str, Limit],
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = dict(limits)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: dict[str, OrderedDict[str, TokenBucket]] = {
            endpoint: OrderedDict() for endpoint in self.limits
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        return cls(
            {
                PREDICT: Limit(settings.http_rate_predict_per_s, settings.http_rate_predict_burst),
                TRAIN: Limit(settings.http_rate_train_per_s, settings.http_rate_train_burst),
                TELEMETRY: Limit(
                    settings.http_rate_telemetry_per_s, settings.http_rate_telemetry_burst
                ),
            },
            settings.http_rate_max_clients,
        )

    def check(self, client: str, endpoint: str) -> float:
        """Seconds `client` must wait before calling `endpoint` again; 0.0: go ahead."""
        limit = self.limits.get(endpoint)
        if limit is None or not limit.enabled:
            return 0.0
        now = self.clock()
        buckets = self._buckets[endpoint]
        bucket = buckets.get(client)
        if bucket is None:
            bucket = buckets[client] = TokenBucket(limit, float(limit.burst), now)
            while len(buckets) > self.max_clients:
                buckets.popitem(last=False)
        else:
            buckets.move_to_end(client)
        return bucket.take(now)


def retry_after(seconds: float) -> str:
    """A `Retry-After` value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))
