"""Gateway metrics, cluster-wide: each instance adds its counts into Redis once a second.

Counting in process and flushing once a second keeps Redis off every request's path; every
instance adds into the same hashes, so the totals are the cluster's. A killed instance loses at
most its last second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import redis
from django.urls import Resolver404, resolve

from gateway import keys
from gateway.conf import gateway_setting
from gateway.redis_client import async_redis

logger = logging.getLogger(__name__)

# Upper bounds of the latency histogram, in seconds (Prometheus `le`).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, float("inf"))
CACHE_OUTCOMES = ("HIT", "STALE", "MISS", "BYPASS")
STATS_KEY = "gateway_stats"


@dataclass
class RequestStats:
    """What the gateway's layers learn about one request, recorded when it ends."""

    cache: str | None = None
    throttled: str | None = None

    def cache_outcome(self, outcome: str) -> None:
        self.cache = outcome

    def throttle_error(self) -> None:
        buffer.add_total("throttle_redis_errors")

    def throttled_by(self, policy: str) -> None:
        self.throttled = policy


def recorder(scope: dict) -> RequestStats:
    """Return the request's stats, kept in its scope by RequestContext (a loose one without it)."""
    return scope.get(STATS_KEY) or RequestStats()


@lru_cache(maxsize=4096)
def route_name(path: str) -> str:
    """Return the URL pattern's name for a path, so that ids do not explode the label set."""
    try:
        match = resolve(path)
    except Resolver404:
        return "unmatched"
    return match.view_name or match.route or "unnamed"


def bucket(seconds: float) -> str:
    return next(f"{le:g}" for le in BUCKETS if seconds <= le)


class MetricsBuffer:
    """Counts since the last flush: totals per route, and per-second series for the dashboard."""

    clock = staticmethod(time.time)

    def __init__(self) -> None:
        self.totals: Counter[str] = Counter()
        self.duration_sums: Counter[str] = Counter()
        self.seconds: dict[int, Counter[str]] = {}
        self._flusher: asyncio.Task | None = None

    def add_total(self, field: str, amount: int = 1) -> None:
        self.totals[field] += amount

    def record(self, *, path: str, status: int, duration: float, stats: RequestStats) -> None:
        route = route_name(path)
        status_class = f"{status // 100}xx"
        le = bucket(duration)
        second = self.seconds.setdefault(int(self.clock()), Counter())
        self.totals[f"requests|{route}|{status_class}"] += 1
        self.totals[f"duration_bucket|{route}|{le}"] += 1
        self.duration_sums[f"duration_sum|{route}"] += duration
        second["requests"] += 1
        second[f"status:{status_class}"] += 1
        second[f"bucket:{le}"] += 1
        if stats.cache:
            self.totals[f"cache|{route}|{stats.cache}"] += 1
            second[f"cache:{stats.cache}"] += 1
        if stats.throttled:
            self.totals[f"throttled|{route}|{stats.throttled}"] += 1
            second["throttled"] += 1

    async def after_request(self) -> None:
        """Flush now (METRICS_FLUSH_SECONDS = 0), or make sure this loop's flusher runs."""
        if gateway_setting("METRICS_FLUSH_SECONDS") == 0:
            await self.flush()
        elif self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(gateway_setting("METRICS_FLUSH_SECONDS"))
            await self.flush()

    async def flush(self) -> None:
        """Add everything counted since the last flush into Redis, in one round trip."""
        totals, sums, seconds = self.totals, self.duration_sums, self.seconds
        if not (totals or seconds):
            return
        self.totals, self.duration_sums, self.seconds = Counter(), Counter(), {}
        retention = gateway_setting("METRICS_RETENTION_SECONDS")
        commands = [("HINCRBY", keys.metrics_totals(), f, n) for f, n in totals.items()]
        commands += [("HINCRBYFLOAT", keys.metrics_totals(), f, n) for f, n in sums.items()]
        for second, counts in seconds.items():
            commands += [("HINCRBY", keys.metrics_second(second), f, n) for f, n in counts.items()]
            commands.append(("EXPIRE", keys.metrics_second(second), retention))
        try:
            await async_redis().execute_many(commands)
        except redis.RedisError as exc:
            logger.warning("dropped a second of gateway metrics: %s", exc)


buffer = MetricsBuffer()
