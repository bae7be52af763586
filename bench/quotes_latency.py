#!/usr/bin/env python
"""Measure the tick-to-client delay of the quotes WebSocket against a running server.

    GATEWAY_RATE_CONNECT=100000/min make run                    # in another terminal
    .venv/bin/python bench/quotes_latency.py --clients 1 --seconds 60
    .venv/bin/python bench/quotes_latency.py --clients 100 --seconds 60

Each client subscribes to every symbol, as the /quotes/ page does, and for every tick records
its arrival time minus the tick's server timestamp `ts` (the same machine's clock, so run it on
the server's machine). Prints one JSON line: the median, p99 and max delay in ms, the ticks seen,
and any seq holes (there should be none). The gateway allows 30 connections a minute per IP by
default, hence GATEWAY_RATE_CONNECT for 100 clients from one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import urllib.request

from websockets.asyncio.client import connect


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def client(url: str, origin: str, seconds: float, delays: list[float]) -> int:
    """Follow the stream for `seconds`; append each tick's delay; return the seq holes seen."""
    holes, last_seq = 0, None
    async with connect(url, origin=origin, open_timeout=60, max_size=None) as socket:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                raw = await asyncio.wait_for(socket.recv(), timeout=remaining)
            except TimeoutError:
                break
            arrived_ms = time.time() * 1000
            message = json.loads(raw)
            if message["type"] == "snapshot":
                last_seq = message["seq"]
            elif message["type"] == "tick":
                first = message.get("first_seq", message["seq"])
                holes += last_seq is not None and first != last_seq + 1
                last_seq = message["seq"]
                delays.append(arrived_ms - message["ts"])
    return holes


async def measure(base_url: str, clients: int, seconds: float) -> dict:
    with urllib.request.urlopen(f"{base_url}/api/v1/quotes/") as response:
        symbols = [quote["symbol"] for quote in json.load(response)["quotes"]]
    url = f"{base_url.replace('http', 'ws', 1)}/ws/quotes/?symbols={','.join(symbols)}"
    delays: list[float] = []
    holes = await asyncio.gather(*(client(url, base_url, seconds, delays) for _ in range(clients)))
    return {
        "clients": clients,
        "seconds": seconds,
        "ticks_received": len(delays),
        "seq_holes": sum(holes),
        "delay_ms_median": round(statistics.median(delays), 1),
        "delay_ms_p99": round(percentile(delays, 0.99), 1),
        "delay_ms_max": round(max(delays), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the running server")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.url.rstrip("/"), args.clients, args.seconds))))


if __name__ == "__main__":
    main()
