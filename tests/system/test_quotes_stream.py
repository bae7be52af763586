"""Live quotes end to end: daphne, then uvicorn, a Celery worker and beat on the test Redis."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from django.conf import settings
from websockets.asyncio.client import connect

from quotes import keys
from tests import support
from tests.quotes.sse_client import read_events

sys.path.insert(0, str(support.BASE_DIR / "scripts"))
import dev  # scripts/dev.py: how `make run` starts each server

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]

CLIENTS = 500


@dataclass
class Stack:
    base_url: str
    ws_url: str
    redis: redis.Redis

    def seq(self) -> int:
        return int(self.redis.hget(keys.meta(), "seq") or 0)

    def stored_ticks(self, first: int, last: int) -> list[dict]:
        entries = self.redis.xrange(keys.ticks(), min=f"{first}-0", max=f"{last}-0")
        return [json.loads(fields["tick"]) for _id, fields in entries]

    def socket(self, query: str):
        return connect(f"{self.ws_url}/ws/quotes/{query}", origin=self.base_url, open_timeout=30)


def start(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            argv, cwd=support.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
        )


def start_server(server: str, port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """daphne as the suite runs it; uvicorn as `make run` does, one process."""
    if server == "daphne":
        return support.start_daphne(port, env, log_path)
    return start(dev.server_argv(server, "127.0.0.1", port, workers=1), env, log_path)


# uvicorn writes each tick's frame straight to the connection (quotes.consumers.DirectFrames);
# daphne gets it through ASGI's send. Every test here runs against both.
@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def stack(request, django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Stack]:
    """The server, one Celery worker and one beat, ticking every second into an empty test Redis."""
    from django.db import connection

    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    client.flushdb()
    env = support.child_env(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        DATABASE_URL=support.database_url(connection.settings_dict),
        REDIS_URL=os.environ.get("REDIS_URL", settings.REDIS_URL),
    )
    logs = tmp_path_factory.mktemp("quotes-stack")
    celery = [str(support.BIN_DIR / "celery"), "-A", "config.celery:app"]
    port = support.free_port()
    processes = [
        start_server(request.param, port, env, logs / f"{request.param}.log"),
        start([*celery, "worker", "--loglevel", "WARNING", "--concurrency", "2",
               "--without-gossip", "--without-mingle", "--without-heartbeat"],
              env, logs / "worker.log"),
        start([*celery, "beat", "--loglevel", "WARNING", "-s", str(logs / "beat-schedule")],
              env, logs / "beat.log"),
    ]  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    try:
        support.wait_for(
            lambda: (
                support.http_status(f"{base_url}/healthz") == 200
                and int(client.hget(keys.meta(), "seq") or 0) > 0
            ),
            timeout=30,
            what=f"{request.param} to answer and the first tick",
        )
        yield Stack(base_url, f"ws://127.0.0.1:{port}", client)
    finally:
        for process in processes:  # all at once: each takes a moment to shut down
            process.terminate()
        for process in processes:
            support.stop(process)
        client.flushdb()
        client.close()


def test_a_client_gets_three_consecutive_ticks_within_five_seconds(stack):
    async def scenario():
        async with stack.socket("?symbols=ACME") as socket:
            snapshot = json.loads(await socket.recv())
            # The deadline is the issue's: three ticks, no gap, within five seconds.
            ticks = await asyncio.wait_for(support.next_ticks(socket, 3, after=0), timeout=5)
        return snapshot, ticks

    snapshot, ticks = asyncio.run(scenario())

    assert snapshot["type"] == "snapshot"
    first = snapshot["seq"] + 1
    assert [tick["seq"] for tick in ticks] == [first, first + 1, first + 2]
    assert [tick["quotes"] for tick in ticks] == [
        [q for q in stored["quotes"] if q["symbol"] == "ACME"]
        for stored in stack.stored_ticks(first, first + 2)
    ]


def test_a_reconnect_with_since_gets_exactly_the_missed_ticks(stack):
    async def scenario():
        async with stack.socket("?symbols=ACME,BOLT") as socket:
            await socket.recv()  # snapshot
            (last_seen,) = await support.next_ticks(socket, 1, after=0)
        seen = last_seen["seq"]
        await asyncio.to_thread(
            support.wait_for, lambda: stack.seq() >= seen + 2, timeout=10, what="two more ticks"
        )
        async with stack.socket(f"?symbols=ACME,BOLT&since={seen}") as socket:
            resumed = await asyncio.wait_for(support.next_ticks(socket, 3, after=0), timeout=10)
        return seen, resumed

    seen, resumed = asyncio.run(scenario())

    assert [tick["seq"] for tick in resumed] == [seen + 1, seen + 2, seen + 3]
    assert resumed == [
        {
            "type": "tick",
            "seq": stored["seq"],
            "ts": stored["ts"],
            "quotes": [q for q in stored["quotes"] if q["symbol"] in {"ACME", "BOLT"}],
        }
        for stored in stack.stored_ticks(seen + 1, seen + 3)
    ]


def test_500_clients_connecting_at_once_all_join_and_get_the_same_ticks(stack):
    async def join(index: int):
        socket = await stack.socket("?symbols=ACME,BOLT,CRUX")
        snapshot = json.loads(await socket.recv())
        return socket, snapshot

    async def scenario():
        joined = await asyncio.wait_for(
            asyncio.gather(*(join(index) for index in range(CLIENTS))), timeout=30
        )
        try:
            # Every first message a snapshot: an `error` here (Redis too slow for a join) says so.
            assert [m for _, m in joined if m["type"] != "snapshot"] == []
            newest = max(snapshot["seq"] for _, snapshot in joined)
            # Every client's ticks from its own snapshot on, up to three ticks past the newest.
            received = await asyncio.wait_for(
                asyncio.gather(
                    *(
                        support.next_ticks(
                            socket, newest + 3 - snapshot["seq"], after=snapshot["seq"]
                        )
                        for socket, snapshot in joined
                    )
                ),
                timeout=15,
            )
        finally:
            await asyncio.gather(*(socket.close() for socket, _ in joined))
        return joined, newest, received

    joined, newest, received = asyncio.run(scenario())

    assert len(joined) == CLIENTS
    for (_, snapshot), ticks in zip(joined, received, strict=True):
        assert [t["seq"] for t in ticks] == list(range(snapshot["seq"] + 1, newest + 4))
    common = [[t for t in ticks if t["seq"] > newest] for ticks in received]
    assert [t["seq"] for t in common[0]] == [newest + 1, newest + 2, newest + 3]
    assert all(ticks == common[0] for ticks in common)


def test_sse_resumes_after_last_event_id(stack):
    with httpx.Client(base_url=stack.base_url, timeout=10) as client:
        with client.stream("GET", "/api/v1/quotes/stream/?symbols=ACME") as response:
            events = read_events(response.iter_lines())
            seen = int(next(e for e in events if e.get("event") == "tick")["id"])
        support.wait_for(lambda: stack.seq() >= seen + 2, timeout=10, what="two more ticks")
        headers = {"Last-Event-ID": str(seen)}
        with client.stream("GET", "/api/v1/quotes/stream/?symbols=ACME", headers=headers) as resp:
            events = read_events(resp.iter_lines())
            assert next(events) == {"retry": "2000"}
            resumed = [next(events) for _ in range(3)]

    assert [(e["event"], int(e["id"])) for e in resumed] == [
        ("tick", seen + 1),
        ("tick", seen + 2),
        ("tick", seen + 3),
    ]
    assert [e["data"]["quotes"] for e in resumed] == [
        [q for q in stored["quotes"] if q["symbol"] == "ACME"]
        for stored in stack.stored_ticks(seen + 1, seen + 3)
    ]
