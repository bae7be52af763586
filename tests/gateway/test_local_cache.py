"""The in-process response cache: HITs from memory, kept exact by the test Redis's invalidations.

Every change here is made by another connection (redis-py's, as another instance or Django makes
it) or through the gateway, and the test waits for what a second instance would see.
"""

from __future__ import annotations

import asyncio

import pytest
import redis

from gateway import keys, purge
from gateway.local_cache import LocalCache, local_cache
from gateway.redis_client import async_redis
from gateway.response_cache import ResponseCache
from tests.gateway.conftest import client_for

pytestmark = pytest.mark.asyncio


@pytest.fixture
def cache(origin) -> ResponseCache:
    return ResponseCache(origin)


async def get(cache, path="/thing", **kwargs):
    async with client_for(cache) as client:
        return await client.get(path, **kwargs)


async def listening() -> LocalCache:
    """Return this loop's in-process cache once it listens for invalidations."""
    memory = local_cache()
    await until(lambda: memory.listening, "the in-process cache to listen")
    return memory


async def until(condition, what: str, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.002)


async def until_served_by_origin(cache, origin, path="/thing", **kwargs):
    """GET `path` until the answer comes from the origin (what another instance purged)."""
    calls = len(origin.calls)
    async with asyncio.timeout(5):
        while True:
            response = await get(cache, path, **kwargs)
            if len(origin.calls) > calls:
                return response
            await asyncio.sleep(0.002)


def lookups_at_redis(redis_client: redis.Redis) -> int:
    """Return how many scripts Redis has run: the cache's LOOKUP is the only one these tests run
    on a HIT (a fill releases its lock with one too)."""
    stats = redis_client.info("commandstats")
    return sum(stats.get(name, {}).get("calls", 0) for name in ("cmdstat_evalsha", "cmdstat_eval"))


async def test_a_hit_once_read_from_redis_is_served_from_memory(cache, origin, redis_client):
    await listening()
    await get(cache)  # MISS: stored in Redis
    await get(cache)  # HIT from Redis: kept in memory
    before = lookups_at_redis(redis_client)

    hits = [await get(cache) for _ in range(3)]

    assert [hit.headers["x-cache"] for hit in hits] == ["HIT"] * 3
    assert {hit.text for hit in hits} == {"hello"}
    assert lookups_at_redis(redis_client) == before  # no LOOKUP: no Redis command at all
    assert len(origin.calls) == 1


async def test_a_purge_by_tag_from_another_connection_is_seen(cache, origin, redis_client):
    origin.headers = {"cache-control": "public, s-maxage=60", "cache-tag": "product-7"}
    await listening()
    await get(cache)
    await get(cache)
    origin.body = b"new price"

    assert purge.tags(["product-7"]) == 1  # as a catalog save in Django does
    after = await until_served_by_origin(cache, origin)

    assert (after.headers["x-cache"], after.text) == ("MISS", "new price")


async def test_a_write_through_this_gateway_is_seen_by_its_very_next_read(cache, origin):
    await listening()
    await get(cache)
    await get(cache)
    origin.body = b"after the write"

    async with client_for(cache) as client:
        await client.post("/thing", content=b"{}")
    after = await get(cache)  # no waiting: the write's invalidations arrived before its answer

    assert (after.headers["x-cache"], after.text) == ("MISS", "after the write")


async def test_an_entry_expired_in_redis_is_not_served_from_memory(cache, origin):
    # No validator and no stale window: Redis keeps it 1 s, the cache's own clock aside.
    origin.headers = {"cache-control": "public, s-maxage=1"}
    memory = await listening()
    await get(cache)
    await get(cache)
    assert memory.kept  # the entry, and its URL's Vary spec

    await asyncio.sleep(1.1)
    after = await get(cache)

    assert after.headers["x-cache"] == "MISS"
    assert len(origin.calls) == 2


async def test_each_vary_variant_is_kept_and_a_url_purge_drops_them_all(
    cache, origin, redis_client
):
    origin.headers = {"cache-control": "public, s-maxage=60", "vary": "Accept-Language"}
    await listening()
    for language in ("en", "fr", "en", "fr"):
        origin.body = language.encode()
        await get(cache, headers={"Accept-Language": language})
    before = lookups_at_redis(redis_client)

    en, fr = [await get(cache, headers={"Accept-Language": lang}) for lang in ("en", "fr")]

    assert (en.text, fr.text, en.headers["x-cache"], fr.headers["x-cache"]) == (
        "en", "fr", "HIT", "HIT"
    )  # fmt: skip
    assert lookups_at_redis(redis_client) == before
    origin.body = b"purged"
    assert purge.urls(["/thing"]) == 2
    for language in ("en", "fr"):
        after = await until_served_by_origin(cache, origin, headers={"Accept-Language": language})
        assert after.text == "purged"


async def test_a_flushed_database_empties_memory(cache, origin, redis_client):
    memory = await listening()
    await get(cache)
    await get(cache)

    redis_client.flushdb()

    await until(lambda: not memory.kept, "memory to be emptied")
    assert (await get(cache)).headers["x-cache"] == "MISS"


async def test_without_its_invalidation_connection_memory_is_emptied_and_redis_answers(
    cache, origin, redis_client
):
    memory = await listening()
    await get(cache)
    await get(cache)
    assert memory.kept

    redis_client.client_kill_filter(_type="pubsub")  # the invalidation connection, dropped
    await until(lambda: not memory.listening, "the loss to be noticed")
    before = lookups_at_redis(redis_client)
    meanwhile = await get(cache)

    assert memory.kept == {} and meanwhile.headers["x-cache"] == "HIT"
    assert lookups_at_redis(redis_client) == before + 1  # from Redis, and not kept
    assert not memory.kept
    await until(lambda: memory.listening, "listening again")
    await get(cache)  # read from Redis once more, and kept
    assert memory.kept


async def test_a_read_that_an_invalidation_overtook_is_not_kept():
    memory = LocalCache(async_redis(), max_bytes=10_000)
    memory.listening = True  # as once subscribed
    epoch = memory.epoch  # a LOOKUP leaves…

    memory.invalidate([b"gw:cache:{x}:entry:y"])  # …a write's invalidation arrives first…
    memory.keep(epoch, [("gw:cache:{x}:entry:y", "old", 60_000, 10)])  # …then the old value

    assert memory.get("gw:cache:{x}:entry:y") is None


async def test_memory_stays_within_its_bytes_dropping_the_least_recently_used():
    memory = LocalCache(async_redis(), max_bytes=3 * (1000 + 1 + 200))
    memory.listening = True
    for key in "abc":
        memory.keep(memory.epoch, [(key, key.upper(), 60_000, 1000)])
    memory.get("a")  # used: now the most recent

    memory.keep(memory.epoch, [("d", "D", 60_000, 1000)])

    assert [key for key in "abcd" if memory.get(key) is not None] == ["a", "c", "d"]
    assert memory.bytes == 3 * 1201
    assert keys.cache_prefix().endswith(":gw:cache:")


async def test_with_a_budget_of_zero_nothing_is_kept_or_listened_for(settings):
    settings.GATEWAY = {**getattr(settings, "GATEWAY", {}), "LOCAL_CACHE_BYTES": 0}
    memory = local_cache()
    await asyncio.sleep(0.05)

    assert (memory.task, memory.listening) == (None, False)
