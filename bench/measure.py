"""Measure with: wrk (bench/wrk.lua), one HTTP request, and the Redis state the scenarios read."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import Message

import redis
import redis.cluster

from bench.world import BENCH_DIR, KEY_PREFIX


@dataclass
class RedisInUse:
    """The Redis the scenarios read and count when it is not the settings' REDIS_URL."""

    client: redis.Redis | None = None
    primaries: list[redis.Redis] = field(default_factory=list)


# The settings' REDIS_URL (the world's single server) until a topology's run points the scenarios
# at its own (use_redis). Module state, not an argument: every scenario reaches Redis through the
# functions below, and a run reads one Redis at a time.
IN_USE = RedisInUse()


def yield_to_servers() -> None:
    """In a load generator before it runs: never preempt the servers on waking up.

    Real clients are machines of their own; here they share the servers' two cores. As SCHED_OTHER
    a generator woken by a response or a tick took the core from the server in the middle of its
    work (a context switch at the end of its send() in perf). SCHED_BATCH (Linux) still gets its
    fair share of the cores, without preempting on wakeup; every wrk run and fan-out client, the
    baselines' included, starts so (docs/performance.md has the before and after).
    """
    if hasattr(os, "SCHED_BATCH"):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def wrk(
    url: str,
    *,
    seconds: float,
    connections: int = 32,
    headers: dict[str, str] | None = None,
    **lua_env: str,
) -> dict:
    """Run wrk against `url`; return requests/s, p50/p99 in ms and the error counts."""
    threads = min(2, connections)
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "-s",
        str(BENCH_DIR / "wrk.lua"),
    ]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    lua = {f"BENCH_{k.upper()}": str(v) for k, v in lua_env.items()}
    result = subprocess.run(
        [*argv, url], capture_output=True, text=True, check=True,
        env={**os.environ, "BENCH_THREADS": str(threads), **lua}, preexec_fn=yield_to_servers,
    )  # fmt: skip
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "rps": round(figures["requests"] / (figures["duration_us"] / 1e6), 1),
        "p50_ms": round(figures["p50_us"] / 1000, 3),
        "p99_ms": round(figures["p99_us"] / 1000, 3),
        "requests": figures["requests"],
        "errors": figures["socket_errors"] + figures["bad_status"],
        **({"x_cache": figures["x_cache"]} if figures["x_cache"] else {}),
    }


def http(
    method: str, url: str, *, body: dict | None = None, headers: dict | None = None
) -> tuple[int, Message, dict | None]:
    """Return (status, headers, parsed body) of one request."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, response.headers, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, error.headers, None


def use_redis(url: str | None) -> None:
    """Point the scenarios at the Redis of `url` (REDIS_URL's forms); None: the settings' again."""
    for client in [*IN_USE.primaries, IN_USE.client]:
        if client is not None:
            client.close()  # closing twice (the client among its primaries) is harmless
    IN_USE.client, IN_USE.primaries = None, []
    if url is None:
        return
    from config.redis_wiring import client_for, parse

    # Generous timeouts: MONITOR and the keyspace events wait on these connections.
    target = parse("REDIS_URL", url)
    client = client_for(target, timeout=10)
    IN_USE.client, IN_USE.primaries = client, [client]
    if isinstance(client, redis.cluster.RedisCluster):
        # A node counts, publishes and monitors only what runs on it: each primary is asked.
        IN_USE.primaries = [
            redis.Redis(n.host, n.port, username=target.username, password=target.password)
            for n in client.get_primaries()
        ]


def redis_client() -> redis.Redis:
    """Return a client of the world's Redis (the settings' REDIS_URL, else use_redis's)."""
    if IN_USE.client is not None:
        return IN_USE.client
    from django.conf import settings

    return redis.Redis.from_url(settings.REDIS_URL)


def primaries() -> list[redis.Redis]:
    """Return a client of each primary: the one server's, or each shard's of a Redis Cluster."""
    return IN_USE.primaries or [redis_client()]


def drop_caches() -> None:
    """Empty the gateway's response cache and the catalog's app cache (both layers cold)."""
    client = redis_client()
    for pattern in (
        f"{KEY_PREFIX}:catalog:*",
        f"{KEY_PREFIX}:gw:cache:*",
        f"{KEY_PREFIX}:gw:tag:*",
    ):
        batch = []
        for key in client.scan_iter(match=pattern, count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)


def eval_calls() -> int:
    """Return how many scripts Redis has run (EVAL and EVALSHA): the gateway's round trips."""
    return sum(
        stats.get(name, {}).get("calls", 0)
        for stats in (client.info("commandstats") for client in primaries())
        for name in ("cmdstat_eval", "cmdstat_evalsha")
    )
