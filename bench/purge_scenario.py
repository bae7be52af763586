"""Measure how long a purge takes to reach every instance's in-process cache (issue 14).

Two instances of the main server (the gateway and Django, the world's Redis and database) hold a
product in memory; a request to A purges it, while A (on a connection of its own) and B are
polled from the moment it is sent. Two kinds: a product write (the catalog's signal purges its
tags, as a user meets it) and the purge API (POST /api/v1/gateway/purge/ by URL, as an operator
meets it). Times run from three moments: the purge's request sent; Redis dropping the entry (this
process tracks the prefix as the instances do, and hears the same invalidation); its answer.
After the answer, the purge's own connection reads the product once: its process must not serve
the old entry (read-your-purge, which the gateway promises); the poll connections may, for a
while (counted, with how long after the answer).

Polls ask `Cache-Control: only-if-cached`: the cache answers from what it holds (the old entry,
a 200 with the old ETag) or a 504, and never goes to Django, so no poll refills the entry and
"old" stays recognisable after a purge that changes nothing (the purge API). X-Cache says HIT
whether the entry came from memory or from Redis, so memory is reached by reading past the first
HIT, and checked by counting Redis's scripts: a check GET from memory runs only the throttle's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import signal
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bench.measure import eval_calls
from bench.world import PRODUCTS, World, say
from gateway import keys
from gateway.redis_client import pack

POLL = {"Cache-Control": "only-if-cached"}
GIVE_UP_SECONDS = 2.0  # an instance still serving the old entry this long after is a finding
clock = time.perf_counter


class Connection:
    """One keep-alive HTTP/1.1 connection: a request written, then its response read."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> Connection:
        """Connect to the server of `url`."""
        address = urlsplit(url)
        return cls(*await asyncio.open_connection(address.hostname, address.port))

    def send(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> None:
        """Write a request (transport.write sends at once when nothing is queued)."""
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    async def receive(self) -> tuple[int, dict[str, str], bytes]:
        """Read one response: status, headers (lower-case names), body."""
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {}
        for line in head[1:]:
            if line:
                name, value = line.split(":", 1)
                headers[name.lower()] = value.strip()
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int((await self.reader.readline()).strip(), 16):
                body += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readline()
        else:
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(head[0].split()[1]), headers, body

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        self.send(method, path, headers, body)
        return await self.receive()

    def close(self) -> None:
        self.writer.close()


class Invalidations:
    """Redis's invalidation messages for the response cache's prefix, each with when it came."""

    def __init__(self) -> None:
        self.heard: list[tuple[float, bytes]] = []
        self.task: asyncio.Task[None] | None = None

    async def start(self, redis_url: str) -> None:
        """Track the prefix in broadcast mode (RESP3: the messages come on this connection)."""
        reader, self.writer = await asyncio.open_unix_connection(urlsplit(redis_url).path)
        tracking = ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", keys.cache_prefix())
        for command in (("HELLO", "3"), tracking):
            self.writer.write(pack(command))
        replies = b""
        while not replies.endswith(b"+OK\r\n"):  # HELLO's map, then TRACKING's OK
            replies += await reader.read(65536)
        self.task = asyncio.create_task(self._listen(reader))

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(65536):
            self.heard.append((clock(), data))

    def first_after(self, since: float, path: str) -> float | None:
        """Return when the first message naming one of `path`'s keys came after `since`."""
        mark = keys.url_hash(path).encode()
        for when, data in self.heard:
            if when > since and mark in data:
                return when
        return None

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.writer.close()


@dataclass
class Poll:
    sent: float
    received: float
    old: bool


async def warm(connection: Connection, path: str) -> tuple[str, dict[str, Any], int]:
    """GET `path` until it is served from memory; return its ETag, product and the retries.

    From memory is a HIT that ran no Redis script but the throttle's: X-Cache does not say. The
    first HIT comes from Redis and is kept unless an invalidation reached the process meanwhile.
    """
    for _ in range(10):
        status, headers, body = await connection.request("GET", path, {})
        if status == 200 and headers.get("x-cache") == "HIT":
            break
    else:
        raise SystemExit(f"[bench] {path} was never a HIT: {status} {headers.get('x-cache')}")
    for retries in range(10):
        before = eval_calls()
        status, headers, _ = await connection.request("GET", path, POLL)
        if eval_calls() - before == 1:
            return headers["etag"], json.loads(body), retries
    raise SystemExit(f"[bench] {path} was never served from memory")


async def poll_until_new(connection: Connection, path: str, old_etag: str) -> list[Poll]:
    """Poll `path` until an answer is not the old entry (a 504, or another ETag), or give up."""
    polls: list[Poll] = []
    deadline = clock() + GIVE_UP_SECONDS
    while not polls or (polls[-1].old and polls[-1].received < deadline):
        sent = clock()
        status, headers, _ = await connection.request("GET", path, POLL)
        polls.append(Poll(sent, clock(), status == 200 and headers.get("etag") == old_etag))
    return polls


def purge_request(
    kind: str, path: str, etag: str, product: dict[str, Any]
) -> tuple[str, str, dict[str, str], bytes]:
    """Return the method, path, headers and body of the purge of `path` of one kind."""
    if kind == "product write":
        body = {"stock": product["stock"] + 1}
        return "PATCH", path, {"If-Match": etag}, json.dumps(body).encode()
    return "POST", "/api/v1/gateway/purge/", {}, json.dumps({"urls": [path]}).encode()


async def one_round(
    connections: dict[str, Connection], heard: Invalidations, kind: str, product_id: int,
    staff: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    """Warm each connection's memory, purge through A, poll A and B; return the times and polls."""
    path = f"/api/v1/products/{product_id}/"
    warmed = [await warm(connection, path) for connection in connections.values()]
    etag, product, _ = warmed[0]
    method, target, headers, body = purge_request(kind, path, etag, product)
    headers = {**staff, **headers, "Content-Type": "application/json"}
    purger = connections["purger"]
    t0 = clock()
    purger.send(method, target, headers, body)
    polls = {
        name: asyncio.create_task(poll_until_new(connections[name], path, etag))
        for name in ("a", "b")
    }
    status, _, _ = await purger.receive()
    ack = clock()
    if status != 200:
        raise SystemExit(f"[bench] {kind} of {path} answered {status}")
    status, headers, _ = await purger.request("GET", path, POLL)
    own_read_old = status == 200 and headers.get("etag") == etag
    return {
        "t0": t0, "ack": ack, "purged": heard.first_after(t0, path),
        "polls": {name: await task for name, task in polls.items()},
        "own_read_old": own_read_old, "warm_retries": sum(w[2] for w in warmed),
    }  # fmt: skip


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of `values`."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def spread(values: list[float]) -> dict[str, float]:
    """Return p50, p99 and max, in ms rounded to µs."""
    return {
        "p50_ms": round(percentile(values, 0.5) * 1000, 3),
        "p99_ms": round(percentile(values, 0.99) * 1000, 3),
        "max_ms": round(max(values) * 1000, 3),
    }


def summarise_kind(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Return a kind's figures: per instance and the last of the two, from each of the moments."""
    unheard = sum(r["purged"] is None for r in rounds)  # none expected: then from the answer
    for r in rounds:
        r["purged"] = r["purged"] or r["ack"]
    seen: dict[str, list[float]] = {"a": [], "b": []}
    late = {"a": 0, "b": 0}  # polls sent after the purge's answer that still got the old entry
    window = {"a": 0.0, "b": 0.0}  # how long after that answer the last of them was received
    gave_up = {"a": 0, "b": 0}
    for r in rounds:
        for name, polls in r["polls"].items():
            seen[name].append(polls[-1].received)
            gave_up[name] += polls[-1].old
            for poll in polls:
                if poll.old and poll.sent > r["ack"]:
                    late[name] += 1
                    window[name] = max(window[name], poll.received - r["ack"])
    last = [max(a, b) for a, b in zip(seen["a"], seen["b"], strict=True)]
    figures: dict[str, Any] = {"rounds": len(rounds)}
    for name, times in (("last", last), ("a", seen["a"]), ("b", seen["b"])):
        figures[name] = {
            f"from_{moment}": spread([t - r[key] for t, r in zip(times, rounds, strict=True)])
            for moment, key in (("sent", "t0"), ("purged", "purged"), ("ack", "ack"))
        }
        if name != "last":
            figures[name] |= {
                "old_after_ack": late[name],
                "old_after_ack_window_ms": round(window[name] * 1000, 3),
                "gave_up": gave_up[name],
                "polls": sum(len(r["polls"][name]) for r in rounds),
                # The resolution: the instance was last seen old up to one poll before.
                "poll_p50_ms": spread(
                    [q.received - q.sent for r in rounds for q in r["polls"][name]]
                )["p50_ms"],
            }
    figures["purge_request"] = spread([r["ack"] - r["t0"] for r in rounds])
    figures["purged_in_redis_after_sent"] = spread([r["purged"] - r["t0"] for r in rounds])
    figures["purge_not_heard"] = unheard
    figures["own_read_old"] = sum(r["own_read_old"] for r in rounds)
    figures["warm_retries"] = sum(r["warm_retries"] for r in rounds)
    return figures


async def measure(
    url_a: str, url_b: str, redis_url: str, rounds: int, staff: dict[str, str]
) -> dict[str, Any]:
    """Run `rounds` rounds of each kind on fresh products; return each kind's figures."""
    heard = Invalidations()
    await heard.start(redis_url)
    # A's two connections may reach either of its worker processes: what A serves to others is
    # polled on one, the purge's own reads happen on the other.
    urls = {"purger": url_a, "a": url_a, "b": url_b}
    connections = {name: await Connection.open(url) for name, url in urls.items()}
    # Products no other scenario writes (Zipf writes 1..20, the core reads 1), none read twice.
    ids = random.Random(14).sample(range(1001, PRODUCTS + 1), 2 * rounds)
    results = {}
    try:
        for number, kind in enumerate(("product write", "purge API")):
            results[kind] = summarise_kind([
                await one_round(connections, heard, kind, product_id, staff)
                for product_id in ids[number * rounds : (number + 1) * rounds]
            ])  # fmt: skip
            heard.heard.clear()
    finally:
        for connection in connections.values():
            connection.close()
        heard.close()
    return results


def purge_latency(world: World, main: str, url: str, rounds: int) -> dict[str, Any]:
    """Start a second instance of `main`, measure the purge's reach from A to both, stop it."""
    second = f"{main} #2"
    url_b = world.start(second, world.kinds[main])
    process = dict(world.processes.started)[second]
    load_before = os.getloadavg()
    started = clock()
    try:
        staff = {"Authorization": f"Bearer {world.staff_token}"}
        kinds = asyncio.run(measure(url, url_b, world.env["REDIS_URL"], rounds, staff))
    finally:
        # Stopped here, not with the world: it would take CPU from the scenarios after this one.
        process.terminate()
        process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # its workers, as World.stop leaves none
            os.killpg(process.pid, signal.SIGKILL)
        world.processes.started.remove((second, process))
        world.urls.pop(second)
    seconds = round(clock() - started, 1)
    say(f"purge: {2 * rounds} rounds in {seconds} s")
    return {
        "instances": f"two {world.kinds[main]} instances ({world.workers} workers each)",
        "seconds": seconds,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "kinds": kinds,
    }
