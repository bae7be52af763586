"""Which way a tick reaches a uvicorn client: its frame written straight to the connection, or
through ASGI's send when the connection's frames are compressed (quotes.consumers.DirectFrames).

A real uvicorn serves the whole ASGI app in the test's event loop, over the real Redis channel
layer; a websockets client reads what it sends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from websockets.asyncio.client import connect

from quotes import feed, services
from quotes.consumers import DirectFrames
from quotes.feed import TickMessage
from tests.support import uvicorn_serving as serving_in_this_loop

T0 = 1_800_000_000.0

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture(autouse=True)
async def close_feed_client():
    yield
    await feed.close_redis_client()


@pytest.fixture
def direct_writes(monkeypatch) -> list[int]:
    """The seq of every tick DirectFrames writes, in order (it still writes them)."""
    written: list[int] = []
    write = DirectFrames.write

    def recording_write(self: DirectFrames, message: TickMessage) -> None:
        written.append(message["seq"])
        write(self, message)

    monkeypatch.setattr(DirectFrames, "write", recording_write)
    return written


@asynccontextmanager
async def uvicorn_serving(*, deflate: bool) -> AsyncIterator[str]:
    """Serve config.asgi under uvicorn's sans-I/O WebSockets (`make run`'s); yield its address."""
    from config.asgi import application

    options = {"ws": "websockets-sansio", "ws_per_message_deflate": deflate}
    async with serving_in_this_loop(application, **options) as (host, port):
        yield f"{host}:{port}"


async def first_tick(address: str) -> tuple[dict, list[str], dict]:
    """Subscribe to ACME offering permessage-deflate, as browsers do, and publish one tick;
    return the snapshot, the extensions agreed and the message.

    The message is checked against the tick published: the seq, and ACME's quote alone.
    """
    url = f"ws://{address}/ws/quotes/?symbols=ACME"
    async with connect(url, origin=f"http://{address}", compression="deflate") as client:
        snapshot = json.loads(await client.recv())
        published = await sync_to_async(services.tick)(now=T0)
        message = json.loads(await asyncio.wait_for(client.recv(), timeout=5))
        extensions = [extension.name for extension in client.protocol.extensions]
    acme = [quote for quote in published["quotes"] if quote["symbol"] == "ACME"]
    assert (message["type"], message["seq"], message["quotes"]) == ("tick", published["seq"], acme)
    return snapshot, extensions, message


async def test_on_uvicorn_a_tick_is_one_frame_written_to_the_connection(
    quotes_settings, direct_writes
):
    async with uvicorn_serving(deflate=False) as address:
        snapshot, extensions, message = await first_tick(address)

    assert (snapshot["type"], extensions) == ("snapshot", [])
    assert message["seq"] == snapshot["seq"] + 1
    assert direct_writes == [message["seq"]]


async def test_with_permessage_deflate_a_tick_goes_through_asgi_send_compressed(
    quotes_settings, direct_writes
):
    # A compressed frame depends on the connection's compressor: the same bytes cannot serve all.
    async with uvicorn_serving(deflate=True) as address:
        snapshot, extensions, message = await first_tick(address)

    assert (snapshot["type"], extensions) == ("snapshot", ["permessage-deflate"])
    assert message["seq"] == snapshot["seq"] + 1
    assert direct_writes == []
