"""What the in-process cache's topology tests share: a cache listening to a topology, reads
through the gateway's response cache, and a node's count of the scripts it ran."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import redis

from config.redis_wiring import app_client
from gateway.local_cache import LocalCache, local_cache
from gateway.response_cache import ResponseCache
from tests import support
from tests.gateway.conftest import client_for

HOST = "127.0.0.1"


@contextlib.asynccontextmanager
async def listening_cache(settings, url: str) -> AsyncIterator[LocalCache]:
    """This loop's in-process cache, the gateway's and the apps' Redis (gateway.purge) at `url`
    (as on an instance `make cluster` starts), once it listens; stopped when the block ends."""
    support.point_stores_at(settings, url)
    app_client.cache_clear()  # the apps' client, one per process: of `url`'s, for this test
    memory = local_cache()
    await until(lambda: memory.listening, "the in-process cache to listen")
    try:
        yield memory
    finally:
        memory.close()
        memory.client.close()
        app_client.cache_clear()
    assert memory.task is not None
    with contextlib.suppress(asyncio.CancelledError):
        await memory.task


async def until(condition, what: str, timeout: float = 5.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.002)
    except TimeoutError:
        raise AssertionError(f"waited {timeout} s for {what}") from None


async def get(app: ResponseCache, path: str):
    async with client_for(app) as http:
        return await http.get(path)


async def until_text(app: ResponseCache, path: str, text: str):
    """GET `path` until its body is `text` (what another instance changed); return that answer."""
    async with asyncio.timeout(5):
        while (response := await get(app, path)).text != text:
            await asyncio.sleep(0.002)
    return response


def lookups_on(port: int) -> int:
    """Return how many scripts the node has run: a LOOKUP that reached it is one (a MISS two, with
    its fill lock's release), a read from memory none. An EVALSHA refused NOSCRIPT (a promoted
    replica has no scripts) is not counted: the EVAL after it is."""
    client = redis.Redis(HOST, port, socket_timeout=2)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    ran = [stats.get(name, {}) for name in ("cmdstat_evalsha", "cmdstat_eval")]
    return sum(each.get("calls", 0) - each.get("failed_calls", 0) for each in ran)
