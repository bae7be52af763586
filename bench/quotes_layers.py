#!/usr/bin/env python
"""Compare channels-redis's core and pub/sub layers fanning quote ticks out to many WebSockets.

    REDIS_URL=redis://127.0.0.1:6379/9 .venv/bin/python bench/quotes_layers.py --clients 500

For each layer: start daphne with that layer, connect the clients (all at once), then store and
publish ticks as quotes.services does, timing `group_send`, the fan-out (publish until the last
client has the tick) and daphne's CPU per tick (beyond its idle CPU). The Redis database given
is flushed: use one nobody else needs. Both layers get a pool of --pool connections and no
socket timeout (redis-py 8's default of 5 s breaks the core layer's 5 s BZPOPMIN).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))

from tests import support  # noqa: E402

LAYERS = {
    "core": "channels_redis.core.RedisChannelLayer",
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}
SETTINGS = """
from config.settings.local import *  # noqa
DEBUG = False
CHANNEL_LAYERS = {{"default": {{"BACKEND": {backend!r}, "CONFIG": {{
    "hosts": [{{"address": REDIS_URL, "max_connections": {pool}, "socket_timeout": None}}],
    "prefix": REDIS_KEY_PREFIX + ":asgi"}}}}}}
"""


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU seconds process `pid` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure(base_url: str, daphne_pid: int, clients: int, ticks: int) -> dict:
    from channels.layers import get_channel_layer
    from websockets.asyncio.client import connect

    from quotes import keys, services

    ws_url = base_url.replace("http", "ws", 1)
    started = time.perf_counter()
    sockets = await asyncio.gather(
        *(
            connect(f"{ws_url}/ws/quotes/?symbols=ACME", origin=base_url, open_timeout=60)
            for _ in range(clients)
        )
    )
    await asyncio.gather(*(socket.recv() for socket in sockets))  # every snapshot
    joined = time.perf_counter() - started

    arrivals: dict[int, list[float]] = {}

    async def listen(socket) -> None:
        async for raw in socket:
            message = json.loads(raw)
            if message["type"] == "tick":
                arrivals.setdefault(message["seq"], []).append(time.perf_counter())

    listeners = [asyncio.create_task(listen(socket)) for socket in sockets]
    idle_cpu = cpu_seconds(daphne_pid)
    await asyncio.sleep(ticks * 0.5)
    idle_cpu = cpu_seconds(daphne_pid) - idle_cpu

    layer = get_channel_layer()
    sends, fanouts = [], []
    busy_cpu = cpu_seconds(daphne_pid)
    for second in range(ticks):
        tick = await asyncio.to_thread(services.advance, now=time.time() + second)
        sent = time.perf_counter()
        await layer.group_send(keys.GROUP, {"type": "quotes.tick", "tick": tick})
        sends.append(time.perf_counter() - sent)
        while len(arrivals.get(tick["seq"], [])) < clients:
            await asyncio.sleep(0.001)
        fanouts.append(max(arrivals[tick["seq"]]) - sent)
        await asyncio.sleep(max(0.0, 0.5 - (time.perf_counter() - sent)))
    busy_cpu = cpu_seconds(daphne_pid) - busy_cpu
    for listener in listeners:
        listener.cancel()
    await asyncio.gather(*(socket.close() for socket in sockets))
    return {
        "join_all_s": round(joined, 2),
        "group_send_ms_median": round(statistics.median(sends) * 1000, 2),
        "group_send_ms_p99": round(percentile(sends, 0.99) * 1000, 2),
        "fanout_ms_median": round(statistics.median(fanouts) * 1000, 1),
        "fanout_ms_p99": round(percentile(fanouts, 0.99) * 1000, 1),
        "daphne_cpu_ms_per_tick": round((busy_cpu - idle_cpu) / ticks * 1000, 1),
        "daphne_cpu_us_per_message": round((busy_cpu - idle_cpu) / ticks / clients * 1e6, 1),
    }


def run_layer(name: str, clients: int, ticks: int, pool: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"quotes-bench-{name}-"))
    (workdir / "bench_settings.py").write_text(SETTINGS.format(backend=LAYERS[name], pool=pool))
    env = support.child_env(
        DJANGO_SETTINGS_MODULE="bench_settings",
        PYTHONPATH=f"{workdir}:{BASE_DIR}",
        VAR_DIR=str(workdir),
        GATEWAY_RATE_CONNECT="1000000/sec",
    )
    os.environ.update({k: env[k] for k in ("DJANGO_SETTINGS_MODULE", "VAR_DIR")})
    sys.path.insert(0, str(workdir))
    import django
    from django.conf import settings

    django.setup()
    import redis

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    port = support.free_port()
    daphne = support.start_daphne(port, env, workdir / "daphne.log")
    try:
        base_url = f"http://127.0.0.1:{port}"
        support.wait_for(
            lambda: support.http_status(f"{base_url}/healthz") == 200, timeout=30, what="daphne"
        )
        return asyncio.run(measure(base_url, daphne.pid, clients, ticks))
    finally:
        support.stop(daphne)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", choices=sorted(LAYERS), required=True)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--ticks", type=int, default=30)
    parser.add_argument("--pool", type=int, default=1000, help="the layer's max_connections")
    args = parser.parse_args()
    if "REDIS_URL" not in os.environ:
        raise SystemExit("Set REDIS_URL to a Redis database this benchmark may flush.")
    result = run_layer(args.layer, args.clients, args.ticks, args.pool)
    print(json.dumps({"layer": args.layer, "clients": args.clients, **result}))


if __name__ == "__main__":
    main()
