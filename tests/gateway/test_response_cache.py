"""The shared response cache, rule by rule (RFC 9111, shared cache), before a scripted origin."""

import asyncio
from collections.abc import Callable

import pytest
from redis.exceptions import ResponseError

from gateway import purge, response_cache
from gateway.response_cache import ResponseCache
from tests.gateway.conftest import client_for

pytestmark = pytest.mark.asyncio


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(origin, clock) -> ResponseCache:
    response_cache = ResponseCache(origin)
    response_cache.clock = clock
    return response_cache


async def get(cache, path="/thing", **kwargs):
    async with client_for(cache) as client:
        return await client.get(path, **kwargs)


async def test_a_response_fresh_for_shared_caches_is_served_from_the_cache(cache, origin, clock):
    first = await get(cache)
    clock.now += 5

    second = await get(cache)

    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.text == "hello"
    assert second.headers["age"] == "5"
    assert second.headers["cache-control"] == "public, s-maxage=60"
    assert len(origin.calls) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"cache-control": "public, max-age=30"},
        # RFC 9111 3: explicit freshness alone lets a shared cache store it, `public` or not.
        {"cache-control": "max-age=30"},
        {"expires": "Fri, 01 Jan 2100 00:00:00 GMT"},
    ],
)
async def test_an_answer_with_explicit_freshness_is_stored(cache, origin, headers):
    origin.headers = headers

    await get(cache)
    second = await get(cache)

    assert second.headers["x-cache"] == "HIT"
    assert len(origin.calls) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"cache-control": "private, max-age=30"},
        {"cache-control": "public, s-maxage=60, no-store"},
        {"cache-control": "public, s-maxage=60", "set-cookie": "session=abc"},
        {"cache-control": "public, s-maxage=60", "vary": "*"},
        {},
    ],
)
async def test_what_a_shared_cache_must_not_store_goes_to_the_origin_every_time(
    cache, origin, headers
):
    origin.headers = headers

    await get(cache)
    second = await get(cache)

    assert second.headers["x-cache"] == "BYPASS"  # the first answer marked the URL as not storable
    assert len(origin.calls) == 2


async def test_a_private_answer_is_never_served_to_somebody_else(cache, origin):
    origin.headers = {"cache-control": "private, max-age=60"}
    origin.body = b"alice's feed"
    await get(cache, headers={"Authorization": "Bearer alice"})
    origin.body = b"bob's feed"

    bob = await get(cache, headers={"Authorization": "Bearer bob"})

    assert bob.text == "bob's feed"


async def test_with_authorization_only_public_or_s_maxage_answers_are_stored(cache, origin):
    origin.headers = {"cache-control": "public, max-age=60"}
    await get(cache, headers={"Authorization": "Bearer alice"})

    shared = await get(cache)

    assert shared.headers["x-cache"] == "HIT"


async def test_each_vary_variant_is_stored_apart(cache, origin):
    origin.headers = {"cache-control": "public, s-maxage=60", "vary": "Accept-Language"}
    origin.body = b"bonjour"
    await get(cache, headers={"Accept-Language": "fr"})
    origin.body = b"hello"

    english = await get(cache, headers={"Accept-Language": "en"})
    french = await get(cache, headers={"Accept-Language": "fr"})
    english_again = await get(cache, headers={"Accept-Language": "en"})

    assert (english.headers["x-cache"], english.text) == ("MISS", "hello")
    assert (french.headers["x-cache"], french.text) == ("HIT", "bonjour")
    assert (english_again.headers["x-cache"], english_again.text) == ("HIT", "hello")


async def test_if_none_match_is_answered_from_the_stored_entry(cache, origin):
    origin.headers = {"cache-control": "public, s-maxage=60", "etag": '"v1"', "vary": "Accept"}
    await get(cache)

    response = await get(cache, headers={"If-None-Match": 'W/"v1"'})

    assert response.status_code == 304
    assert response.content == b""
    assert (response.headers["etag"], response.headers["x-cache"]) == ('"v1"', "HIT")
    assert (response.headers["cache-control"], response.headers["vary"]) == (
        "public, s-maxage=60",
        "Accept",
    )
    assert len(origin.calls) == 1


async def test_if_modified_since_is_answered_from_the_stored_entry(cache, origin):
    modified = "Sun, 29 Nov 2026 08:00:00 GMT"
    origin.headers = {"cache-control": "public, s-maxage=60", "last-modified": modified}
    await get(cache)

    response = await get(cache, headers={"If-Modified-Since": modified})

    assert response.status_code == 304
    assert response.headers["last-modified"] == modified


async def test_a_conditional_miss_stores_the_full_answer_and_sends_a_304(cache, origin):
    origin.headers = {"cache-control": "public, s-maxage=60", "etag": '"v1"'}

    conditional = await get(cache, headers={"If-None-Match": '"v1"'})
    full = await get(cache)

    assert conditional.status_code == 304
    assert "if-none-match" not in {k.decode() for k in origin.calls[0]["headers"]}
    assert (full.status_code, full.text, full.headers["x-cache"]) == (200, "hello", "HIT")


async def test_stale_while_revalidate_serves_stale_and_refreshes_once(cache, origin, clock):
    origin.headers = {"cache-control": "public, s-maxage=10, stale-while-revalidate=30"}
    await get(cache)
    clock.now += 15
    origin.body = b"fresh"

    stale = await get(cache)
    also_stale = await get(cache)
    await cache.drain()
    refreshed = await get(cache)

    assert (stale.headers["x-cache"], stale.text) == ("STALE", "hello")
    assert also_stale.headers["x-cache"] == "STALE"
    assert (refreshed.headers["x-cache"], refreshed.text) == ("HIT", "fresh")
    assert len(origin.calls) == 2  # the first fill, and one refresh


async def test_stale_if_error_serves_stale_when_the_origin_fails(cache, origin, clock):
    origin.headers = {"cache-control": "public, s-maxage=10, stale-if-error=300"}
    await get(cache)
    clock.now += 60
    origin.status, origin.body = 503, b"database down"

    response = await get(cache)

    assert (response.status_code, response.text, response.headers["x-cache"]) == (
        200,
        "hello",
        "STALE",
    )


async def test_stale_if_error_serves_stale_when_the_origin_raises(cache, origin, clock):
    origin.headers = {"cache-control": "public, s-maxage=10, stale-if-error=300"}
    await get(cache)
    clock.now += 60
    origin.fail = True

    response = await get(cache)

    assert (response.status_code, response.text) == (200, "hello")


async def test_past_stale_if_error_the_failure_is_passed_on(cache, origin, clock):
    origin.headers = {"cache-control": "public, s-maxage=10, stale-if-error=20"}
    await get(cache)
    clock.now += 60
    origin.status, origin.body = 503, b"database down"

    response = await get(cache)

    assert (response.status_code, response.text) == (503, "database down")


async def test_a_clients_no_cache_revalidates_at_most_once_per_interval(cache, origin):
    await get(cache)
    origin.body = b"newer"

    forced = await get(cache, headers={"Cache-Control": "no-cache"})
    forced_again = await get(cache, headers={"Cache-Control": "no-cache"})

    assert (forced.headers["x-cache"], forced.text) == ("MISS", "newer")
    assert (forced_again.headers["x-cache"], forced_again.text) == ("HIT", "newer")
    assert len(origin.calls) == 2


class RefusingSets:
    """The test Redis, but each SET refused as a cluster that has just lost a primary refuses it.

    What a Redis Cluster failover answered mid-request (tests/system/test_redis_cluster_faults.py
    caught it as a 500); every other command reaches the real server.
    """

    def __init__(self, client) -> None:
        self.client = client

    async def execute(self, *command):
        if command[0] == "SET":
            raise ResponseError("CLUSTERDOWN The cluster is down")
        return await self.client.execute(*command)

    def __getattr__(self, name: str):
        return getattr(self.client, name)


@pytest.fixture
def refuse_sets(monkeypatch) -> Callable[[], None]:
    """Call it, and from then on the cache's own commands (not its lookups) meet RefusingSets."""
    real = response_cache.async_redis

    def refuse() -> None:
        monkeypatch.setattr(response_cache, "async_redis", lambda: RefusingSets(real()))

    return refuse


async def test_a_clients_no_cache_that_redis_cannot_give_a_turn_is_served_the_entry(
    cache, origin, refuse_sets
):
    await get(cache)
    origin.body = b"newer"
    refuse_sets()

    response = await get(cache, headers={"Cache-Control": "no-cache"})

    assert (response.status_code, response.headers["x-cache"]) == (200, "HIT")
    assert response.text == "hello"
    assert len(origin.calls) == 1


async def test_a_miss_that_redis_cannot_collapse_goes_to_the_origin(cache, origin, refuse_sets):
    refuse_sets()

    response = await get(cache)

    assert (response.status_code, response.headers["x-cache"]) == (200, "MISS")
    assert response.text == "hello"
    assert len(origin.calls) == 1


async def test_a_background_refresh_that_redis_cannot_give_a_turn_ends_quietly(
    cache, origin, clock, refuse_sets
):
    origin.headers = {"cache-control": "public, s-maxage=10, stale-while-revalidate=30"}
    await get(cache)
    clock.now += 15
    refuse_sets()

    stale = await get(cache)
    refreshes = set(cache.background)
    await cache.drain()

    assert (stale.status_code, stale.headers["x-cache"]) == (200, "STALE")
    assert refreshes and all(task.exception() is None for task in refreshes)
    assert len(origin.calls) == 1


async def test_a_clients_no_store_bypasses_the_cache(cache, origin):
    await get(cache)

    response = await get(cache, headers={"Cache-Control": "no-store"})

    assert response.headers["x-cache"] == "BYPASS"
    assert len(origin.calls) == 2


async def test_if_match_goes_to_the_origin(cache, origin):
    await get(cache)

    await get(cache, headers={"If-Match": '"v1"'})

    assert len(origin.calls) == 2


async def test_an_answer_over_the_size_cap_is_not_stored(cache, origin, settings):
    settings.GATEWAY = {**settings.GATEWAY, "CACHE_MAX_ENTRY_BYTES": 4}

    await get(cache)
    second = await get(cache)

    assert second.text == "hello"
    assert len(origin.calls) == 2


async def test_concurrent_misses_reach_the_origin_once(cache, origin):
    origin.delay = 0.2

    responses = await asyncio.gather(*(get(cache) for _ in range(20)))

    assert len(origin.calls) == 1
    assert {response.text for response in responses} == {"hello"}
    assert sorted(r.headers["x-cache"] for r in responses) == ["HIT"] * 19 + ["MISS"]


async def test_head_is_answered_from_a_get_entry_without_a_body(cache, origin):
    head_miss = await cache_head(cache)
    head_hit = await cache_head(cache)

    assert origin.calls[0]["method"] == "GET"  # a HEAD miss fills the entry with a GET
    assert (head_miss.content, head_hit.content) == (b"", b"")
    assert head_hit.headers["x-cache"] == "HIT"


async def cache_head(cache):
    async with client_for(cache) as client:
        return await client.head("/thing")


async def test_a_successful_write_invalidates_its_url(cache, origin):
    await get(cache)
    origin.status = 204
    async with client_for(cache) as client:
        await client.delete("/thing")
    origin.status = 200

    after = await get(cache)

    assert after.headers["x-cache"] == "MISS"


async def test_purge_by_tag_drops_tagged_entries_only(cache, origin):
    origin.headers = {"cache-control": "public, s-maxage=60", "cache-tag": "product:1, products"}
    await get(cache, "/one")
    origin.headers = {"cache-control": "public, s-maxage=60", "cache-tag": "product:2"}
    await get(cache, "/two")

    dropped = purge.tags(["product:1", "unknown-tag"])

    assert dropped == 1
    assert (await get(cache, "/one")).headers["x-cache"] == "MISS"
    assert (await get(cache, "/two")).headers["x-cache"] == "HIT"


async def test_purge_by_url_drops_every_variant(cache, origin):
    origin.headers = {"cache-control": "public, s-maxage=60", "vary": "Accept-Language"}
    await get(cache, headers={"Accept-Language": "fr"})
    await get(cache, headers={"Accept-Language": "en"})

    dropped = purge.urls(["/thing"])

    assert dropped == 2
    assert (await get(cache, headers={"Accept-Language": "fr"})).headers["x-cache"] == "MISS"


async def test_the_purge_command_drops_everything(cache, origin):
    from asgiref.sync import sync_to_async
    from django.core.management import call_command

    await get(cache, "/one")
    await get(cache, "/two")

    await sync_to_async(call_command)("gateway_purge", "--all")

    assert (await get(cache, "/one")).headers["x-cache"] == "MISS"
    assert (await get(cache, "/two")).headers["x-cache"] == "MISS"


async def test_requests_served_by_another_ones_fill_are_counted_as_hits(origin):
    from gateway.asgi import Gateway
    from gateway.stats import totals

    origin.delay = 0.2
    async with client_for(Gateway(origin)) as client:
        await asyncio.gather(*(client.get("/collapsed") for _ in range(10)))

    assert totals()["routes"]["unmatched"]["cache"] == {"MISS": 1, "HIT": 9}
