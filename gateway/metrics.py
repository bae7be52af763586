"""Gateway metrics, cluster-wide: each instance adds its counts into Redis once a second.

Counting in process and flushing once a second keeps Redis off every request's path; every
instance adds into the same hashes, so the totals are the cluster's. A killed instance loses at
most its last second.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import logging
import time
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import redis
from django.urls import Resolver404, resolve

from gateway import keys
from gateway.conf import gateway_setting
from gateway.http import Scope
from gateway.redis_client import Argument, async_redis

logger = logging.getLogger(__name__)

# Upper bounds of the latency histogram, in seconds (Prometheus `le`).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, float("inf"))
# REVALIDATED: a stale entry that Django confirmed with a 304 (it entered Django, rendered nothing).
CACHE_OUTCOMES = ("HIT", "STALE", "REVALIDATED", "MISS", "BYPASS")
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


def recorder(scope: Scope) -> RequestStats:
    """Return the request's stats, kept in its scope by RequestContext (a loose one without it)."""
    stats: RequestStats | None = scope.get(STATS_KEY)
    return stats or RequestStats()


@lru_cache(maxsize=4096)
def route_name(path: str) -> str:
    """Return the URL pattern's name for a path, so that ids do not explode the label set."""
    try:
        match = resolve(path)
    except Resolver404:
        return "unmatched"
    return match.view_name or match.route or "unnamed"


_BUCKET_LABELS = [f"{le:g}" for le in BUCKETS]
# What a request was: route, status, latency bucket (an index of BUCKETS), cache outcome, throttle.
_Kind = tuple[str, int, int, str | None, str | None]


@dataclass(frozen=True)
class _Fields:
    totals: tuple[str, ...]
    second: tuple[str, ...]


@lru_cache(maxsize=8192)
def _fields(
    route: str, status_class: str, le: str, cache: str | None, throttled: str | None
) -> _Fields:
    """The counters one request adds to, by what it was: worked out once per kind of request."""
    totals = [f"requests|{route}|{status_class}", f"duration_bucket|{route}|{le}"]
    second = ["requests", f"status:{status_class}", f"bucket:{le}"]
    if cache:
        totals.append(f"cache|{route}|{cache}")
        second.append(f"cache:{cache}")
    if throttled:
        totals.append(f"throttled|{route}|{throttled}")
        second.append("throttled")
    return _Fields(tuple(totals), tuple(second))


class MetricsBuffer:
    """Counts since the last flush: totals per route, and per-second series for the dashboard."""

    clock = staticmethod(time.time)

    def __init__(self) -> None:
        self.totals: Counter[str] = Counter()
        # Per second, how many requests of each kind, and the durations by route: expanded into
        # their fields at a flush, so that a request adds to two counters rather than eight.
        self.seconds: dict[int, Counter[_Kind]] = {}
        self.durations: dict[str, float] = collections.defaultdict(float)
        self._flusher: asyncio.Task[None] | None = None

    def add_total(self, field: str, amount: int = 1) -> None:
        self.totals[field] += amount

    def record(self, *, path: str, status: int, duration: float, stats: RequestStats) -> None:
        now = int(self.clock())
        second = self.seconds.get(now)
        if second is None:
            second = self.seconds[now] = Counter()
        route, le = route_name(path), bisect.bisect_left(BUCKETS, duration)
        second[route, status, le, stats.cache, stats.throttled] += 1
        self.durations[route] += duration

    def flush_now(self) -> bool:
        """Return whether to flush now (METRICS_FLUSH_SECONDS = 0); else make sure this loop's
        flusher runs. Not a coroutine: it is called after every request, and rarely awaits."""
        if gateway_setting("METRICS_FLUSH_SECONDS") == 0:
            return True
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())
        return False

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(gateway_setting("METRICS_FLUSH_SECONDS"))
            await self.flush()

    async def flush(self) -> None:
        """Add everything counted since the last flush into Redis, in one round trip."""
        totals, seconds, durations = self.totals, self.seconds, self.durations
        if not (totals or seconds):
            return
        self.totals, self.seconds, self.durations = Counter(), {}, collections.defaultdict(float)
        retention = gateway_setting("METRICS_RETENTION_SECONDS")
        per_second: dict[int, Counter[str]] = {}
        for second, kinds in seconds.items():
            counts = per_second[second] = Counter()
            for (route, status, le, cache, throttled), n in kinds.items():
                fields = _fields(route, f"{status // 100}xx", _BUCKET_LABELS[le], cache, throttled)
                for field in fields.second:
                    counts[field] += n
                for field in fields.totals:
                    totals[field] += n
        sums = {f"duration_sum|{route}": duration for route, duration in durations.items()}
        commands: list[tuple[Argument, ...]] = [
            ("HINCRBY", keys.metrics_totals(), f, n) for f, n in totals.items()
        ]
        commands += [("HINCRBYFLOAT", keys.metrics_totals(), f, n) for f, n in sums.items()]
        for second, counts in per_second.items():
            commands += [("HINCRBY", keys.metrics_second(second), f, n) for f, n in counts.items()]
            commands.append(("EXPIRE", keys.metrics_second(second), retention))
        try:
            await async_redis().execute_many(commands)
        except redis.RedisError as exc:
            logger.warning("dropped a second of gateway metrics: %s", exc)


buffer = MetricsBuffer()
