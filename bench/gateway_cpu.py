#!/usr/bin/env python
"""The gateway's own CPU per cache HIT and per 304, in process, without an HTTP server.

    .venv/bin/python bench/gateway_cpu.py [--requests 8000] [--concurrency 16] [--profile]

Calls config.asgi's Gateway layers directly (a stand-in origin behind them, so every request after
the first is a HIT), 16 at a time, against a private Redis on a unix socket, and prints the
process's CPU time per request. `floor` is the least a HIT can do: the throttle's script, the cache
lookup's script and the stored response sent, with none of the layers around them. CPU time is
the process's own, so other load on the machine moves it less than it moves req/s. `--profile`
prints cProfile's top functions for the HITs instead.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(BASE_DIR), str(BASE_DIR / "scripts")]

import dev  # noqa: E402

BODY = b'{"id": 1, "name": "A product", "price": "9.99", "currency": "EUR"}' * 4
HEADERS = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"public, max-age=60, s-maxage=3600"),
    (b"etag", b'"product-1-v1"'),
    (b"cache-tag", b"product:1, products"),
    (b"content-length", str(len(BODY)).encode()),
]
REQUEST = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
    "scheme": "http", "path": "/api/v1/products/1/", "raw_path": b"/api/v1/products/1/",
    "query_string": b"", "root_path": "", "client": ("127.0.0.1", 40000),
    "server": ("127.0.0.1", 8000),
    "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")],
}  # fmt: skip
REVALIDATION = {**REQUEST, "headers": [*REQUEST["headers"], (b"if-none-match", b'"product-1-v1"')]}


async def origin(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


async def receive() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


async def discard(event: dict) -> None:
    pass


def floor_app():
    """A HIT with nothing around it: the two scripts and the stored response."""
    from gateway import keys
    from gateway.response_cache import lookup
    from gateway.throttling import RUN_GCRA

    throttle_key = keys.throttle("anon", "ip:127.0.0.1")

    async def floor(scope, receive, send) -> None:
        await RUN_GCRA([throttle_key], [1000, 1_000_000_000])
        _, _, entry = await lookup(scope["path"], scope["headers"])
        await send({"type": "http.response.start", "status": 200, "headers": entry.headers})
        await send({"type": "http.response.body", "body": entry.body})

    return floor


async def cpu_per_request(app, scope: dict, requests: int, concurrency: int) -> float:
    async def client(count: int) -> None:
        for _ in range(count):
            await app(scope, receive, discard)

    started = time.process_time()
    await asyncio.gather(*(client(requests // concurrency) for _ in range(concurrency)))
    return (time.process_time() - started) / requests * 1e6


async def measure(args: argparse.Namespace) -> None:
    import redis
    from django.conf import settings

    from gateway.asgi import Gateway

    gateway = Gateway(origin)
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    await gateway(REQUEST, receive, discard)  # the miss that fills the entry
    floor = floor_app()
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        await cpu_per_request(gateway, REQUEST, args.requests, args.concurrency)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        return
    cases = [("HIT", gateway, REQUEST), ("304", gateway, REVALIDATION), ("floor", floor, REQUEST)]
    for round_number in range(1, 4):
        figures = []
        for name, app, scope in cases:
            micros = await cpu_per_request(app, scope, args.requests, args.concurrency)
            figures.append(f"{name} {micros:.1f} µs")
        print(f"round {round_number}: " + ", ".join(figures), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=8000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    processes = dev.Processes()
    workdir = Path(tempfile.mkdtemp(prefix="sc-gateway-cpu-"))
    try:
        os.environ.update(
            DJANGO_SETTINGS_MODULE="config.settings.local",
            REDIS_URL=dev.start_private_redis(processes, workdir),
            REDIS_KEY_PREFIX="bench",
            VAR_DIR=str(workdir),
            LOG_LEVEL="WARNING",
            **{f"GATEWAY_RATE_{p}": "1000000/sec" for p in ("ANON", "USER", "AUTH", "WRITE")},
        )
        import django
        import uvloop

        django.setup()
        uvloop.run(measure(args))
    finally:
        processes.stop_all()


if __name__ == "__main__":
    main()
