#!/usr/bin/env python
"""Subscribe many WebSocket (or SSE) clients to the quote stream; time each tick's delivery.

    .venv/bin/python bench/fanout.py ws://127.0.0.1:8000 --clients 1000 --seconds 10 [--sse]

Run by bench/run.py against a server whose beat and worker tick once a second. For every tick a
client receives: its delay from the tick's server timestamp (`ts`, ms), and whether any sequence
number was skipped. Prints one JSON line. Bounded: connecting gives up after --connect-timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import time

SYMBOLS = "ACME,BOLT,CRUX,DYNO,EPIC,FLUX,GLOW,HALO,IRIS,JADE"
# A tick's seq and ts lead its JSON, and a conflated one ends with first_seq: this reads just those
# (bytes, undecoded), as decoding whole messages was a fifth of this process's CPU at 5,000 clients.
TICK_HEAD = re.compile(rb'\{"type": "tick", "seq": (\d+), "ts": (\d+),')
FIRST_SEQ = re.compile(rb'"first_seq": (\d+)\}$')


class Tally:
    def __init__(self) -> None:
        self.delays: list[float] = []
        self.gaps = 0
        self.ticks = 0
        self.recording = False

    def message(self, raw: bytes, last_seq: int | None) -> int | None:
        """Count `raw` if it is a tick; return the seq the client is up to date with."""
        head = TICK_HEAD.match(raw)
        if head is None:
            return last_seq  # a heartbeat or a pong
        seq = int(head[1])
        if self.recording:
            self.ticks += 1
            self.delays.append(time.time() * 1000 - int(head[2]))
            conflated = FIRST_SEQ.search(raw)
            first = int(conflated[1]) if conflated else seq
            if last_seq is not None and first > last_seq + 1:
                self.gaps += first - last_seq - 1
        return seq


async def websocket_client(
    url: str, origin: str, tally: Tally, ready: asyncio.Event, compression: str | None
) -> None:
    from websockets.asyncio.client import connect

    target = f"{url}/ws/quotes/?symbols={SYMBOLS}"
    options = {"max_queue": None, "ping_interval": None, "compression": compression}
    async with connect(target, origin=origin, open_timeout=120, **options) as socket:
        last_seq = json.loads(await socket.recv())["seq"]  # the snapshot
        ready.set()
        while True:
            last_seq = tally.message(await socket.recv(decode=False), last_seq)


async def sse_client(url: str, tally: Tally, ready: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection(*url.removeprefix("http://").split(":"))
    writer.write(
        f"GET /api/v1/quotes/stream/?symbols={SYMBOLS} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    last_seq, event = None, None
    try:
        while line := await reader.readline():
            if line.startswith(b"event: "):
                event = line[7:].strip()
            elif line.startswith(b"data: "):
                if event == b"snapshot":
                    last_seq = json.loads(line[6:])["seq"]
                    ready.set()
                elif event == b"tick":
                    last_seq = tally.message(line[6:].rstrip(b"\n"), last_seq)
    finally:
        writer.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


async def main(args: argparse.Namespace) -> dict:
    tally = Tally()
    readies = [asyncio.Event() for _ in range(args.clients)]
    started = time.perf_counter()
    tasks = []
    for number, ready in enumerate(readies):
        if args.sse:
            tasks.append(asyncio.create_task(sse_client(args.url, tally, ready)))
        else:
            origin = args.url.replace("ws://", "http://", 1)
            client = websocket_client(args.url, origin, tally, ready, args.compression)
            tasks.append(asyncio.create_task(client))
        if number % 100 == 99:
            await asyncio.sleep(0.05)  # connect in waves, as real clients arrive
    connected = 0
    try:
        await asyncio.wait_for(
            asyncio.gather(*(ready.wait() for ready in readies)), args.connect_timeout
        )
        connected = args.clients
    except TimeoutError:
        connected = sum(ready.is_set() for ready in readies)
    joined = time.perf_counter() - started
    failed = sum(task.done() for task in tasks)
    tally.recording = True
    print("RECORDING", flush=True)  # bench/run.py samples the server's CPU from here
    cpu_before, recording_started = time.process_time(), time.perf_counter()
    await asyncio.sleep(args.seconds)
    tally.recording = False
    # This process shares the cores with the server: its own load is part of every delay.
    client_cpu = (time.process_time() - cpu_before) / (time.perf_counter() - recording_started)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "clients": args.clients,
        "connected": connected - failed,
        "connect_s": round(joined, 2),
        "ticks_received": tally.ticks,
        "ticks_per_client": round(tally.ticks / max(1, connected - failed), 2),
        "delay_p50_ms": round(statistics.median(tally.delays), 1) if tally.delays else None,
        "delay_p99_ms": round(percentile(tally.delays, 0.99), 1) if tally.delays else None,
        "gaps": tally.gaps,
        "client_cpu_percent": round(client_cpu * 100, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connect-timeout", type=float, default=90)
    parser.add_argument("--sse", action="store_true")
    # Browsers offer permessage-deflate, and the servers accept it: so do these clients by default.
    parser.add_argument("--no-compression", dest="compression", action="store_const", const=None,
                        default="deflate", help="do not offer permessage-deflate")  # fmt: skip
    args = parser.parse_args()
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(main(args))), flush=True)
