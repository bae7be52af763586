#!/usr/bin/env python
"""Subscribe many WebSocket (or SSE) clients to the quote stream; time each tick's delivery.

    .venv/bin/python bench/fanout.py ws://127.0.0.1:8000 --clients 1000 --seconds 10 [--sse]

Run by bench/run.py against a server whose beat and worker tick once a second. For every tick a
client receives: its delay from the tick's server timestamp (`ts`, ms), and whether any sequence
number was skipped. Prints RECORDING when every client has joined (or --connect-timeout passed),
then one JSON line. bench/run.py starts it, and so its processes, as a load generator
(bench/measure.yield_to_servers). The clients are spread over --processes processes (one a core
by default), more when a share would pass --per-process (one file descriptor a client, and a
process may have no more than its hard RLIMIT_NOFILE); the processes connect together, --rate
clients a second in all (in waves every 50 ms), and record the same window.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import os
import re
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

from websockets.frames import Frame, Opcode
from websockets.utils import accept_key, generate_key

SYMBOLS = "ACME,BOLT,CRUX,DYNO,EPIC,FLUX,GLOW,HALO,IRIS,JADE"
# A tick's seq and ts lead its JSON, and a conflated one ends with first_seq: this reads just those
# (bytes, undecoded), as decoding whole messages was a fifth of this process's CPU at 5,000 clients.
TICK_HEAD = re.compile(rb'\{"type": "tick", "seq": (\d+), "ts": (\d+),')
FIRST_SEQ = re.compile(rb'"first_seq": (\d+)\}$')
# File descriptors a process keeps beyond its clients' sockets (the loop, stdio, imports).
SPARE_FDS = 100
WAVE_SECONDS = 0.05
# Past half of the ephemeral port range (~14,000 connections from one address to one server),
# each connect() searched the range for a port: ~1.9 ms of kernel CPU against ~20 µs (Linux 6.18),
# most of this generator's CPU late in the 20,000 join. Real clients come from many addresses: so
# do these, each bound to one of 127.0.0.1 to .8, when the server is on loopback.
SOURCE_ADDRESSES = 8
NO_STATUS = 1005  # a close frame without a code (RFC 6455 7.4.1)
# A frame's 7-bit length 126 or 127 says that a 16- or 64-bit length follows (RFC 6455 5.2).
EXTENDED_LENGTH = {126: 2, 127: 8}


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


class WebSocketError(Exception):
    """What ended a WebSocket client here; failures() names it with its message."""


class HandshakeFailed(WebSocketError):
    """The server did not switch to WebSocket as asked, or accepted what this client cannot read."""


class Closed(WebSocketError):
    """The server sent a close frame; the message is its code."""


class BadFrame(WebSocketError):
    """A frame this client would misread: an extension's, masked, or a fragment."""


class NoSnapshot(WebSocketError):
    """The first message was not the snapshot (an error's code, or its type)."""


def upgrade_request(host: str, origin: str, key: str, deflate: bool) -> bytes:
    """Return the HTTP request that asks for the quote stream's WebSocket, as a browser sends it."""
    # Browsers offer permessage-deflate: offering it makes the server decide, as for them.
    offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    return (
        f"GET /ws/quotes/?symbols={SYMBOLS} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n{offer if deflate else ''}\r\n"
    ).encode()


def handshake_failure(head: bytes, key: str) -> HandshakeFailed | None:
    """Return why the server's response `head` did not switch to WebSocket as asked, or None."""
    status, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    fields = (line.partition(":") for line in lines)
    headers = {name.strip().lower(): value.strip() for name, _, value in fields}
    if status.split(" ")[1:2] != ["101"]:
        return HandshakeFailed(status)
    if headers.get("sec-websocket-accept") != accept_key(key):
        return HandshakeFailed("wrong Sec-WebSocket-Accept")
    if "sec-websocket-extensions" in headers:  # its frames would be compressed: not read here
        return HandshakeFailed(f"extension accepted: {headers['sec-websocket-extensions']}")
    return None


def masked_frame(opcode: Opcode, payload: bytes) -> bytes:
    """Return a client's control frame: a client masks every frame it sends (RFC 6455 5.3)."""
    return Frame(opcode, payload[:125]).serialize(mask=True)


class WebSocketClient(asyncio.Protocol):
    """One client of the quote stream: the handshake, then each frame as its bytes arrive.

    A protocol, not a coroutine over asyncio's StreamReader, which woke a task and awaited three
    reads per tick: at 20,000 clients this generator took 44-46% of a core before, 34-38% after,
    CPU that the server it measures shares the cores with. Its own frame parser, not websockets'
    sans-I/O ClientProtocol: that one took ~3.2 µs of CPU per 1.9 KB tick against ~0.8 µs here.
    """

    def __init__(self, tally: Tally, ready: asyncio.Event, key: str) -> None:
        self.tally = tally
        self.ready = ready
        self.key = key
        self.unread = b""  # a frame (or the handshake's response) not yet whole
        self.upgraded = False
        self.last_seq: int | None = None
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, error: Exception | None) -> None:
        if error is None:
            gone = "the server closed the connection"
            error = ConnectionResetError(gone) if self.upgraded else HandshakeFailed("no response")
        self.fail(error)

    def fail(self, error: Exception) -> None:
        if not self.ended.done():
            self.ended.set_exception(error)
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        data = self.unread + data if self.unread else data
        offset = 0
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.unread = data
                return
            if failure := handshake_failure(data[:end], self.key):
                self.fail(failure)
                return
            self.upgraded = True
            offset = end + 4
        size = len(data)
        while size - offset >= 2 and not self.ended.done():
            first, second = data[offset], data[offset + 1]
            # RSV bits (an extension's) or a mask (never a server's)
            if first & 0x70 or second & 0x80:
                self.fail(BadFrame(f"frame header {first:#04x} {second:#04x}"))
                return
            length, start = second & 0x7F, offset + 2
            extended = EXTENDED_LENGTH.get(length, 0)  # bytes of a longer length that follow
            if extended:
                if size < start + extended:
                    break  # the rest of the header is still on its way
                length, start = int.from_bytes(data[start : start + extended]), start + extended
            if start + length > size:
                break  # the rest of the frame is still on its way
            offset = start + length
            self.frame(first, data[start:offset])
        self.unread = data[offset:]

    def frame(self, first: int, payload: bytes) -> None:
        """Tally a data frame; answer a ping; end on a close frame."""
        opcode = first & 0x0F
        if opcode in (Opcode.TEXT, Opcode.BINARY) and first & 0x80:
            if self.last_seq is None:
                self.join(payload)
            else:
                self.last_seq = self.tally.message(payload, self.last_seq)
        elif opcode == Opcode.PING:
            self.transport.write(masked_frame(Opcode.PONG, payload))
        elif opcode == Opcode.CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else NO_STATUS
            # The close handshake echoes the code.
            self.transport.write(masked_frame(Opcode.CLOSE, payload[:2]))
            self.fail(Closed(str(code)))
        elif opcode != Opcode.PONG:  # the server sends whole messages: a fragment would be misread
            self.fail(BadFrame(f"opcode {opcode}, fin {first >> 7}"))

    def join(self, payload: bytes) -> None:
        """Take the first message, which must be the snapshot, as the start of the sequence."""
        snapshot = json.loads(payload)
        if snapshot["type"] != "snapshot":
            self.fail(NoSnapshot(snapshot.get("code", snapshot["type"])))
            return
        self.last_seq = snapshot["seq"]
        self.ready.set()


async def websocket_client(
    url: str, origin: str, tally: Tally, ready: asyncio.Event, deflate: bool, number: int
) -> None:
    """Join the quote stream over a WebSocket of this file's own; tally every tick until cancelled.

    The `websockets` library's client (with one source address) took ~105% of the two cores during
    the 20,000 join at 2,000 a second, CPU the server needs too; this one, which does only what the
    stream needs, 35 to 70%. `number` (the client's) chooses its source address.
    """
    host = url.removeprefix("ws://")
    address, port = host.rsplit(":", 1)
    source = (f"127.0.0.{1 + number % SOURCE_ADDRESSES}", 0) if address.startswith("127.") else None
    key = generate_key()
    transport, client = await asyncio.get_running_loop().create_connection(
        lambda: WebSocketClient(tally, ready, key), address, int(port), local_addr=source
    )
    try:
        transport.write(upgrade_request(host, origin, key, deflate))
        await client.ended
    finally:
        transport.close()


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


def failures(tasks: list[asyncio.Task[None]], readies: list[asyncio.Event]) -> dict[str, int]:
    """Count the clients not connected at the end, by what ended them or "never joined"."""
    counts: collections.Counter[str] = collections.Counter()
    for task, ready in zip(tasks, readies, strict=True):
        if task.done():
            error = task.exception()
            cause = error.__cause__ if error else None
            # Its cause's type, or this file's own errors' message: a status line, a close code.
            own = isinstance(error, WebSocketError)
            detail = type(cause).__name__ if cause else str(error) if own else ""
            counts[type(error).__name__ + (f" ({detail})" if detail else "")] += 1
        elif not ready.is_set():
            counts["never joined"] += 1
    return dict(counts)


async def start_clients(
    args: argparse.Namespace, tally: Tally
) -> tuple[list[asyncio.Task[None]], list[asyncio.Event]]:
    """Connect this process's clients in waves; return them once all joined or timed out."""
    readies = [asyncio.Event() for _ in range(args.clients)]
    tasks = []
    for number, ready in enumerate(readies):
        if args.sse:
            tasks.append(asyncio.create_task(sse_client(args.url, tally, ready)))
        else:
            origin = args.url.replace("ws://", "http://", 1)
            client = websocket_client(args.url, origin, tally, ready, args.deflate, number)
            tasks.append(asyncio.create_task(client))
        if number % args.wave == args.wave - 1:
            await asyncio.sleep(WAVE_SECONDS)  # connect in waves, as real clients arrive
    waiting = asyncio.gather(*(ready.wait() for ready in readies))
    with contextlib.suppress(TimeoutError):  # those not joined by then count as failed
        await asyncio.wait_for(waiting, args.connect_timeout)
    return tasks, readies


async def worker(args: argparse.Namespace) -> dict:
    """One process's clients: join, say so, record when told to, return the raw figures."""
    tally = Tally()
    started = time.perf_counter()
    tasks, readies = await start_clients(args, tally)
    print(json.dumps({"connect_s": time.perf_counter() - started}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "record"
    tally.recording = True
    cpu_before = time.process_time()
    await asyncio.sleep(args.seconds)
    tally.recording = False
    cpu = time.process_time() - cpu_before
    failed = failures(tasks, readies)
    joined = len(tasks) - sum(failed.values())
    result = {"joined": joined, "failed": failed, "delays": tally.delays, "gaps": tally.gaps,
              "ticks": tally.ticks, "cpu_s": cpu}  # fmt: skip
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return result


def worker_argv(args: argparse.Namespace, clients: int, wave: int, out: str) -> list[str]:
    compression = [] if args.deflate else ["--no-compression"]
    return [sys.executable, __file__, args.url, "--worker", out, "--clients", str(clients),
            "--seconds", str(args.seconds), "--connect-timeout", str(args.connect_timeout),
            "--wave", str(wave), *(["--sse"] if args.sse else []), *compression]  # fmt: skip


def shares(total: int, parts: int) -> list[int]:
    """Split `total` into `parts` near-equal whole shares."""
    return [total // parts + (number < total % parts) for number in range(parts)]


def run(args: argparse.Namespace) -> dict:
    """Start the worker processes, record them all over one window, merge what they measured."""
    parts = max(min(args.processes, args.clients), math.ceil(args.clients / args.per_process))
    wave = max(1, round(args.rate * WAVE_SECONDS))
    waves = [max(1, share) for share in shares(wave, parts)]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "text": True}
    # Each worker writes its delays to a file: a pipe lost lines of them beyond 64 KiB.
    results = tempfile.mkdtemp(prefix="fanout-")
    workers = [
        subprocess.Popen(worker_argv(args, clients, wave, f"{results}/{number}.json"), **pipes)
        for number, (clients, wave) in enumerate(
            zip(shares(args.clients, parts), waves, strict=True)
        )
    ]
    try:
        joins = [json.loads(process.stdout.readline()) for process in workers]
        print("RECORDING", flush=True)  # bench/fanout_scenario.py samples the server from here
        started = time.perf_counter()
        for process in workers:
            process.stdin.write("record\n")
            process.stdin.flush()
        for process in workers:
            process.stdout.readline()  # "done"
        elapsed = time.perf_counter() - started
        ends = [json.loads(Path(f"{results}/{number}.json").read_text()) for number in range(parts)]
    finally:
        for process in workers:
            process.kill()
            process.wait()
        shutil.rmtree(results, ignore_errors=True)
    return merge(args.clients, parts, joins, ends, elapsed)


def merge(clients: int, parts: int, joins: list[dict], ends: list[dict], elapsed: float) -> dict:
    """One row of every worker's figures: delays pooled, counts summed, CPU a share of a core."""
    delays = [delay for end in ends for delay in end["delays"]]
    failed: collections.Counter[str] = collections.Counter()
    for end in ends:
        failed.update(end["failed"])
    connected = sum(end["joined"] for end in ends)  # and still connected when recording ended
    # These processes share the cores with the server: their own load is part of every delay.
    cpu = sum(end["cpu_s"] for end in ends) / elapsed
    return {
        "clients": clients,
        "connected": connected,
        "failed": dict(failed),
        "connect_s": round(max(join["connect_s"] for join in joins), 2),
        "ticks_received": sum(end["ticks"] for end in ends),
        "ticks_per_client": round(sum(end["ticks"] for end in ends) / max(1, connected), 2),
        "delay_p50_ms": round(statistics.median(delays), 1) if delays else None,
        "delay_p99_ms": round(percentile(delays, 0.99), 1) if delays else None,
        "gaps": sum(end["gaps"] for end in ends),
        "client_processes": parts,
        "client_cpu_percent": round(cpu * 100, 1),
    }


def raise_fd_limit() -> int:
    """Raise this process's file-descriptor limit to its hard limit; return the limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def arguments() -> argparse.Namespace:
    fd_limit = raise_fd_limit()
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connect-timeout", type=float, default=90)
    parser.add_argument("--rate", type=int, default=2000, help="clients arriving a second")
    parser.add_argument("--wave", type=int, default=100, help=argparse.SUPPRESS)  # a worker's share
    # Real clients are machines of their own; these share the server's cores. A process a core reads
    # them all in parallel, and more processes only add wakeups and context switches, which cost
    # the server too: 8 processes of 2,500 had a 20,000 p99 of 366-460 ms against 373-390 for 2,
    # and took 31-41% of a core against 23% (docs/performance.md).
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--per-process", type=int, default=fd_limit - SPARE_FDS)
    parser.add_argument("--sse", action="store_true")
    parser.add_argument("--worker", metavar="RESULT_FILE", help=argparse.SUPPRESS)
    # Browsers offer permessage-deflate: so do these clients by default. The servers as `make run`
    # starts them decline it; a client whose server accepts it fails (HandshakeFailed), as these
    # clients do not inflate.
    parser.add_argument("--no-compression", dest="deflate", action="store_false",
                        help="do not offer permessage-deflate")  # fmt: skip
    return parser.parse_args()


if __name__ == "__main__":
    args = arguments()
    if not args.worker:
        print(json.dumps(run(args)), flush=True)
        sys.exit(0)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    Path(args.worker).write_text(json.dumps(asyncio.run(worker(args))))
    print("done", flush=True)
