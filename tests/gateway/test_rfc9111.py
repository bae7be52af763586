"""The shared cache against RFC 9111's rules, one each, before a scripted origin.

Each test is one of the fixes that the public caching suite (`make conformance`) showed were
needed; together with tests/gateway/test_response_cache.py they keep the gateway conformant
without running the suite.
"""

import asyncio

import pytest
from django.utils.http import http_date

from gateway import cache_rules, keys
from gateway.response_cache import ResponseCache
from tests.gateway.conftest import client_for
from tests.gateway.test_response_cache import Clock, get

pytestmark = pytest.mark.asyncio


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(origin, clock) -> ResponseCache:
    response_cache = ResponseCache(origin)
    response_cache.clock = clock
    return response_cache


# --- what may be stored (3, 3.5) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cache_control", "stored"),
    [
        ("max-age=60", False),  # 3.5: fresh, but for the one who sent the Authorization
        ("public, max-age=60", True),
        ("s-maxage=60", True),
        ("max-age=60, must-revalidate", True),
    ],
)
async def test_an_answer_to_an_authorized_request_is_shared_only_when_it_says_so(
    cache, origin, cache_control, stored
):
    origin.headers = {"cache-control": cache_control}
    await get(cache, headers={"Authorization": "Bearer alice"})

    anonymous = await get(cache)

    assert (anonymous.headers["x-cache"] == "HIT") is stored


async def test_no_store_with_must_understand_is_stored_for_a_status_it_understands(cache, origin):
    origin.headers = {"cache-control": "max-age=60, no-store, must-understand"}

    await get(cache)
    second = await get(cache)

    assert second.headers["x-cache"] == "HIT"


async def test_must_understand_forbids_storing_a_status_it_does_not_know(cache, origin):
    origin.status = 599
    origin.headers = {"cache-control": "max-age=60, must-understand"}

    await get(cache)
    second = await get(cache)

    assert second.headers["x-cache"] != "HIT"
    assert len(origin.calls) == 2


async def test_headers_named_by_connection_are_not_stored(cache, origin):
    origin.headers = {"cache-control": "max-age=60", "connection": "x-a", "x-a": "1", "x-b": "2"}

    await get(cache)
    hit = await get(cache)

    assert hit.headers["x-cache"] == "HIT"
    assert (hit.headers.get("x-a"), hit.headers["x-b"]) == (None, "2")


# --- freshness and age (4.2) ----------------------------------------------------------------------


async def test_expires_minus_date_is_the_freshness(cache, origin, clock):
    origin.headers = {"date": http_date(clock.now), "expires": http_date(clock.now + 30)}
    await get(cache)
    clock.now += 20
    fresh = await get(cache)
    clock.now += 15

    expired = await get(cache)

    assert fresh.headers["x-cache"] == "HIT"
    assert expired.headers["x-cache"] == "MISS"


async def test_an_invalid_expires_means_already_expired(cache, origin):
    origin.headers = {"expires": "0"}

    await get(cache)
    second = await get(cache)

    assert second.headers["x-cache"] != "HIT"


async def test_an_age_from_upstream_counts_against_the_freshness(cache, origin, clock):
    origin.headers = {"cache-control": "max-age=60", "age": "50"}
    await get(cache)
    clock.now += 5
    fresh = await get(cache)
    clock.now += 10

    stale = await get(cache)

    assert (fresh.headers["x-cache"], fresh.headers["age"]) == ("HIT", "55")
    assert stale.headers["x-cache"] == "MISS"


async def test_the_age_a_date_in_the_past_shows_counts_too(cache, origin, clock):
    origin.headers = {"cache-control": "max-age=60", "date": http_date(clock.now - 100)}

    await get(cache)
    second = await get(cache)

    assert second.headers["x-cache"] == "MISS"  # 100 s old on arrival: stale at once


@pytest.mark.parametrize("age", ["abc", "-10", "7.5", "0, 0", "10;foo=bar"])
async def test_an_age_that_is_not_one_integer_makes_the_answer_stale(cache, origin, age):
    origin.headers = {"cache-control": "max-age=3600", "age": age}

    await get(cache)
    second = await get(cache)

    assert second.headers["x-cache"] != "HIT"


@pytest.mark.parametrize(
    ("cache_control", "fresh"),
    [
        ("max-age=003600", True),
        ('max-age="3600"', True),  # 5.2: a quoted argument is accepted too
        ("max-age='3600'", False),
        ("max-age=-1", False),
        ("max-age=3600, max-age=0", True),  # 4.2.1: the first occurrence counts
        ('foo="max-age=3600", max-age=0', False),  # a comma in a quoted string separates nothing
        ("s-maxage=0, max-age=3600", False),  # a shared cache takes s-maxage over max-age
        ("MaX-AgE=3600", True),
    ],
)
async def test_cache_control_is_parsed_as_rfc_9111_says(cache, origin, cache_control, fresh):
    origin.headers = {"cache-control": cache_control}

    await get(cache)
    second = await get(cache)

    assert (second.headers["x-cache"] == "HIT") is fresh


@pytest.mark.parametrize(
    "lines",
    [
        [b"public", b"max-age=5, no-cache"],
        [b"public, max-age=5", b"max-age=0, no-cache"],  # the first max-age counts
    ],
)
async def test_cache_control_on_several_lines_is_one_list(lines):
    found = cache_rules.directives([(b"cache-control", line) for line in lines])

    assert found == {"public": None, "max-age": "5", "no-cache": None}


# --- revalidation (4.3) ---------------------------------------------------------------------------


async def test_a_stale_entry_is_revalidated_and_a_304_freshens_its_headers(cache, origin, clock):
    origin.headers = {"cache-control": "max-age=10", "etag": '"v1"', "x-version": "old"}
    await get(cache)
    clock.now += 20
    origin.status, origin.body = 304, b""
    origin.headers = {"cache-control": "max-age=100", "etag": '"v1"', "x-version": "new"}

    revalidated = await get(cache)
    clock.now += 50
    hit = await get(cache)

    assert origin.calls[1]["headers"][b"if-none-match"] == b'"v1"'
    assert (revalidated.status_code, revalidated.text) == (200, "hello")
    assert revalidated.headers["x-cache"] == "REVALIDATED"
    assert revalidated.headers["x-version"] == "new"
    assert (hit.headers["x-cache"], hit.text, hit.headers["cache-control"]) == (
        "HIT",
        "hello",
        "max-age=100",
    )
    assert len(origin.calls) == 2


async def test_without_an_etag_the_revalidation_asks_if_modified_since(cache, origin, clock):
    modified = http_date(clock.now - 3600)
    origin.headers = {"cache-control": "max-age=10", "last-modified": modified}
    await get(cache)
    clock.now += 20
    origin.status, origin.body = 304, b""

    revalidated = await get(cache)

    assert origin.calls[1]["headers"][b"if-modified-since"] == modified.encode()
    assert (revalidated.text, revalidated.headers["x-cache"]) == ("hello", "REVALIDATED")


async def test_a_client_304_is_answered_from_the_revalidated_entry(cache, origin, clock):
    origin.headers = {"cache-control": "max-age=10", "etag": '"v1"'}
    await get(cache)
    clock.now += 20
    origin.status, origin.body = 304, b""

    conditional = await get(cache, headers={"If-None-Match": '"v1"'})

    assert conditional.status_code == 304
    assert conditional.headers["etag"] == '"v1"'


async def test_a_no_cache_answer_is_stored_and_revalidated_before_every_use(cache, origin):
    origin.headers = {"cache-control": "no-cache", "etag": '"v1"'}
    await get(cache)
    origin.status, origin.body = 304, b""

    first_use = await get(cache)
    second_use = await get(cache)

    assert [r.headers["x-cache"] for r in (first_use, second_use)] == ["REVALIDATED"] * 2
    assert {r.text for r in (first_use, second_use)} == {"hello"}
    assert len(origin.calls) == 3


async def test_an_entry_whose_revalidation_is_no_longer_storable_is_not_served_again(
    cache, origin, clock
):
    origin.headers = {"cache-control": "max-age=10", "etag": '"v1"'}
    await get(cache)
    clock.now += 20
    origin.headers, origin.body = {"cache-control": "no-store"}, b"private now"

    revalidated = await get(cache)
    after = await get(cache)

    assert (revalidated.text, after.text) == ("private now", "private now")
    assert after.headers["x-cache"] == "BYPASS"


async def test_without_a_last_modified_if_modified_since_is_compared_with_date(
    cache, origin, clock
):
    origin.headers = {"cache-control": "max-age=60", "date": http_date(clock.now - 10)}
    await get(cache)

    conditional = await get(cache, headers={"If-Modified-Since": http_date(clock.now)})

    assert conditional.status_code == 304


# --- serving stale (4.2.4) ------------------------------------------------------------------------


@pytest.mark.parametrize("directive", ["must-revalidate", "proxy-revalidate", "no-cache"])
async def test_a_response_that_forbids_stale_is_never_served_stale_even_in_its_windows(
    cache, origin, clock, directive
):
    origin.headers = {
        "cache-control": f"s-maxage=10, stale-while-revalidate=60, stale-if-error=300, {directive}",
        "etag": '"v1"',
    }
    await get(cache)
    clock.now += 15
    origin.status, origin.body = 503, b"database down"

    response = await get(cache)

    assert (response.status_code, response.text, response.headers["x-cache"]) == (
        503,
        "database down",
        "MISS",
    )


# --- request directives (5.2.1) -------------------------------------------------------------------


async def test_a_request_max_age_refuses_an_older_entry(cache, origin, clock):
    await get(cache)
    clock.now += 20
    origin.body = b"newer"

    young_enough = await get(cache, headers={"Cache-Control": "max-age=30"})
    too_old = await get(cache, headers={"Cache-Control": "max-age=10"})

    assert (young_enough.headers["x-cache"], young_enough.text) == ("HIT", "hello")
    assert too_old.text == "newer"


async def test_a_request_min_fresh_refuses_an_entry_about_to_go_stale(cache, origin, clock):
    await get(cache)  # public, s-maxage=60
    clock.now += 50
    origin.body = b"newer"

    response = await get(cache, headers={"Cache-Control": "min-fresh=20"})

    assert response.text == "newer"


async def test_a_request_max_stale_accepts_a_stale_entry(cache, origin, clock):
    origin.headers = {"cache-control": "max-age=10"}
    await get(cache)
    clock.now += 30

    within = await get(cache, headers={"Cache-Control": "max-stale=60"})
    beyond = await get(cache, headers={"Cache-Control": "max-stale=5"})

    assert (within.headers["x-cache"], within.text) == ("STALE", "hello")
    assert beyond.headers["x-cache"] == "MISS"


async def test_max_stale_does_not_override_must_revalidate(cache, origin, clock):
    origin.headers = {"cache-control": "max-age=10, must-revalidate"}
    await get(cache)
    clock.now += 30

    response = await get(cache, headers={"Cache-Control": "max-stale"})

    assert response.headers["x-cache"] == "MISS"


async def test_only_if_cached_with_nothing_stored_is_a_504(cache, origin):
    response = await get(cache, headers={"Cache-Control": "only-if-cached"})

    assert response.status_code == 504
    assert response.json()["code"] == "not_cached"
    assert origin.calls == []


async def test_only_if_cached_is_answered_from_a_fresh_entry(cache, origin):
    await get(cache)

    response = await get(cache, headers={"Cache-Control": "only-if-cached"})

    assert (response.status_code, response.headers["x-cache"]) == (200, "HIT")


# --- Vary (4.1) -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored_with", "asked_with"),
    [
        ({"Accept-Language": "en-US, fr"}, {"Accept-Language": "en-us,fr"}),
        ({"X-Thing": "a, b"}, {"X-Thing": "a,b"}),
    ],
)
async def test_equivalent_selecting_headers_select_the_same_variant(
    cache, origin, stored_with, asked_with
):
    origin.headers = {"cache-control": "max-age=60", "vary": "Accept-Language, X-Thing"}
    await get(cache, headers=stored_with)

    response = await get(cache, headers=asked_with)

    assert response.headers["x-cache"] == "HIT"


async def test_a_selecting_header_on_two_lines_is_one_list(cache, origin):
    origin.headers = {"cache-control": "max-age=60", "vary": "X-Thing"}
    await get(cache, headers={"X-Thing": "a, b"})

    async with client_for(cache) as client:
        response = await client.get("/thing", headers=[("X-Thing", "a"), ("X-Thing", "b")])

    assert response.headers["x-cache"] == "HIT"


async def test_a_different_selecting_header_is_another_variant(cache, origin):
    origin.headers = {"cache-control": "max-age=60", "vary": "X-Thing"}
    await get(cache, headers={"X-Thing": "a"})

    response = await get(cache, headers={"X-Thing": "b"})

    assert response.headers["x-cache"] == "MISS"


# --- invalidation (4.4) ---------------------------------------------------------------------------


@pytest.mark.parametrize("named_by", ["location", "content-location"])
async def test_a_write_invalidates_the_url_its_answer_names(cache, origin, named_by):
    await get(cache, "/other")
    origin.status, origin.headers = 201, {named_by: "/other"}
    async with client_for(cache) as client:
        await client.post("/thing")
    origin.status, origin.headers = 200, {"cache-control": "public, s-maxage=60"}

    after = await get(cache, "/other")

    assert after.headers["x-cache"] == "MISS"


async def test_a_write_leaves_another_hosts_url_alone(cache, origin):
    await get(cache, "/other")
    origin.status, origin.headers = 201, {"location": "http://elsewhere.example/other"}
    async with client_for(cache) as client:
        await client.post("/thing")
    origin.status, origin.headers = 200, {"cache-control": "public, s-maxage=60"}

    after = await get(cache, "/other")

    assert after.headers["x-cache"] == "HIT"


async def test_a_write_invalidates_its_url_with_its_query(cache, origin):
    await get(cache, "/thing?page=2")
    origin.status = 204
    async with client_for(cache) as client:
        await client.put("/thing?page=2")
    origin.status = 200

    after = await get(cache, "/thing?page=2")

    assert after.headers["x-cache"] == "MISS"


# --- collapsing -----------------------------------------------------------------------------------


async def test_a_fill_that_outlived_its_lock_leaves_the_next_fillers_lock(
    cache, origin, redis_client
):
    origin.delay = 0.2
    fill = asyncio.create_task(get(cache))
    while not origin.calls:  # the filler holds the lock and is in the origin
        await asyncio.sleep(0)
    redis_client.set(keys.cache_fill_lock("/thing"), "the-next-filler")  # ours expired, retaken

    await fill

    assert redis_client.get(keys.cache_fill_lock("/thing")) in (
        "the-next-filler",
        b"the-next-filler",
    )
