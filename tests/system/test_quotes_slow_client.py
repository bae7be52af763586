"""A client that stops reading gets conflated ticks: the server holds no backlog, nobody waits."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from websockets.asyncio.client import connect

from quotes import keys, services
from tests import support
from tests.quotes import wide_market_settings

sys.path.insert(0, str(support.BASE_DIR / "scripts"))
import dev  # scripts/dev.py: how `make run` starts each server

pytestmark = pytest.mark.system

# ~40 KB a tick: 120 of them are more than the kernel buffers (about 4 MB) hold for one socket.
TICKS = 120
T0 = 1_800_000_000.0


def start_server(server: str, port: int, application: str, log_path: Path) -> subprocess.Popen:
    """Start `server` (daphne or uvicorn, one process) as `make run` would start it."""
    env = support.child_env(
        DJANGO_SETTINGS_MODULE="tests.quotes.wide_market_settings",
        REDIS_URL=os.environ.get("REDIS_URL", settings.REDIS_URL),
    )
    argv = dev.server_argv(server, "127.0.0.1", port, workers=1, app=application)
    with log_path.open("wb") as log:
        return subprocess.Popen(
            argv, cwd=support.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
        )


async def publish(second: int) -> dict:
    tick = await sync_to_async(services.advance)(now=T0 + second)
    await get_channel_layer().group_send(keys.GROUP, {"type": "quotes.tick", "tick": tick})
    return tick


async def scenario(base_url: str, port: int) -> tuple[list, list, int, int]:
    url = f"ws://127.0.0.1:{port}/ws/quotes/?symbols=" + ",".join(
        wide_market_settings.QUOTES["SYMBOLS"]
    )
    # No permessage-deflate (uvicorn would agree to it): 120 compressed ticks fit in the kernel.
    fast = await connect(url, origin=base_url, max_size=None, compression=None)
    # A client that reads nothing: a tiny receive buffer, and at most one message queued.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    slow = await connect(
        url, origin=base_url, sock=sock, max_queue=1, max_size=None, compression=None
    )
    await fast.recv()
    await slow.recv()
    fast_messages, slow_messages, slow_bytes = [], [], 0

    async def read_fast() -> None:
        while not fast_messages or fast_messages[-1]["seq"] < TICKS:
            fast_messages.append(json.loads(await fast.recv()))

    async def read_slow() -> None:
        nonlocal slow_bytes
        while True:
            raw = await slow.recv()
            slow_bytes += len(raw)
            slow_messages.append(json.loads(raw))

    fast_reader = asyncio.create_task(read_fast())
    published_bytes = 0
    for second in range(TICKS):
        published_bytes += len(json.dumps({"type": "tick", **await publish(second)}))
    await asyncio.wait_for(fast_reader, timeout=30)
    # Now the slow client reads; what was held back goes out with the next tick after it caught up.
    slow_reader = asyncio.create_task(read_slow())
    last = TICKS
    while not slow_messages or slow_messages[-1]["seq"] < last:
        last = (await publish(last))["seq"]
        await asyncio.sleep(0.2)
    slow_reader.cancel()
    await fast.close()
    await slow.close()
    return fast_messages, slow_messages, slow_bytes, published_bytes


def newest_quotes(redis_client, first: int, last: int) -> list[dict]:
    newest: dict[str, dict] = {}
    for _id, fields in redis_client.xrange(keys.ticks(), min=f"{first}-0", max=f"{last}-0"):
        newest.update({quote["symbol"]: quote for quote in json.loads(fields[b"tick"])["quotes"]})
    return list(newest.values())


@pytest.mark.parametrize(
    ("server", "application"),
    [
        pytest.param("daphne", "tests.quotes.asgi_without_gateway:application", id="daphne"),
        # The consumer reaches daphne's connection through `send`: the gateway passes a
        # WebSocket's `send` on unwrapped.
        pytest.param("daphne", "config.asgi:application", id="daphne+gateway"),
        # uvicorn's `send` waits while the client is not reading: the ticks meanwhile are merged.
        pytest.param("uvicorn", "config.asgi:application", id="uvicorn+gateway"),
    ],
)
def test_a_client_that_stops_reading_gets_conflated_ticks_and_delays_nobody(
    settings, redis_client, tmp_path, server, application
):
    settings.QUOTES = wide_market_settings.QUOTES
    port = support.free_port()
    process = start_server(server, port, application, tmp_path / f"{server}.log")
    base_url = f"http://127.0.0.1:{port}"
    try:
        support.wait_for(
            lambda: support.http_status(f"{base_url}/healthz") == 200, timeout=30, what=server
        )
        fast, slow, slow_bytes, published_bytes = asyncio.run(scenario(base_url, port))
    finally:
        support.stop(process)

    # The reader that keeps up got every tick on its own, none held back.
    assert [m["seq"] for m in fast] == list(range(1, TICKS + 1))
    assert not any(m.get("conflated") for m in fast)
    # The one that did not: fewer messages and bytes than were published, no seq unaccounted for.
    covered = [(m.get("first_seq", m["seq"]), m["seq"]) for m in slow]
    assert [first for first, _ in covered] == [1] + [last + 1 for _, last in covered[:-1]]
    conflated = [m for m in slow if m.get("conflated")]
    assert conflated
    assert len(slow) < slow[-1]["seq"]
    assert slow_bytes < published_bytes
    # Each conflated tick holds the newest quote of every symbol that moved in its range.
    for message in conflated:
        assert message["quotes"] == newest_quotes(
            redis_client, message["first_seq"], message["seq"]
        )
