"""What a request costs: no database query to know the user, few Redis commands per draft."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from sessions_demo import drafts_store, idempotency, selectors, services

DRAFTS = "/api/v1/drafts/"


def redis_commands(redis_client, action: Callable[[], object]) -> Counter:
    """Return the Redis commands `action` made (those run inside Lua scripts included)."""

    def calls() -> Counter:
        stats = redis_client.info("commandstats")
        return Counter({name.removeprefix("cmdstat_"): s["calls"] for name, s in stats.items()})

    before = calls()
    action()
    used = calls() - before
    del used["info"]
    return used


@pytest.fixture
def draft(alice) -> dict:
    # The first call of a script loads it (SCRIPT LOAD once per Redis server, not per request).
    drafts_store.delete(str(alice.pk), "no-such-draft", expected_version=1)
    return services.draft_create(user_id=str(alice.pk), title="t", body="b")


def test_a_draft_read_is_one_pipelined_hget_and_expire(alice, draft, redis_client):
    used = redis_commands(
        redis_client, lambda: selectors.draft_get(user_id=str(alice.pk), draft_id=draft["id"])
    )

    assert used == Counter({"hget": 1, "expire": 1})


def test_a_draft_list_is_one_pipelined_hgetall_and_expire(alice, draft, redis_client):
    used = redis_commands(redis_client, lambda: selectors.draft_list(user_id=str(alice.pk)))

    assert used == Counter({"hgetall": 1, "expire": 1})


def test_a_draft_create_is_one_script(alice, draft, redis_client):
    used = redis_commands(
        redis_client,
        lambda: services.draft_create(user_id=str(alice.pk), title="t", body="b"),
    )

    assert used == Counter({"evalsha": 1, "hlen": 1, "hset": 1, "expire": 1})


def test_an_idempotent_create_adds_one_set_before_and_a_get_and_set_inside_the_script(
    alice, draft, redis_client
):
    def create() -> None:
        fingerprint = idempotency.fingerprint("POST", DRAFTS, {"title": "t"})
        claim, _ = idempotency.claim(
            user_id=str(alice.pk), key="k", request_fingerprint=fingerprint
        )
        services.draft_create(user_id=str(alice.pk), title="t", body="b", claim=claim)

    used = redis_commands(redis_client, create)

    # The GET inside checks that the key still holds this request's claim.
    assert used == Counter({"set": 2, "get": 1, "evalsha": 1, "hlen": 1, "hset": 1, "expire": 1})


def test_a_draft_update_is_a_pipelined_read_then_one_compare_and_set_script(
    alice, draft, redis_client
):
    used = redis_commands(
        redis_client,
        lambda: services.draft_update(
            user_id=str(alice.pk), draft_id=draft["id"], changes={"body": "c"}, if_match=['"1"']
        ),
    )

    assert used == Counter({"hget": 2, "expire": 2, "evalsha": 1, "hset": 1})


def test_draft_endpoints_take_no_database_query(asgi, as_alice, django_assert_num_queries):
    with django_assert_num_queries(0):
        created = asgi.post(DRAFTS, json={"title": "t"}, headers=as_alice)
        url = created.headers["location"]
        responses = [
            created,
            asgi.get(DRAFTS, headers=as_alice),
            asgi.get(url, headers=as_alice),
            asgi.request("PATCH", url, json={"body": "x"}, headers=as_alice),
            asgi.request("DELETE", url, headers=as_alice),
            asgi.get("/api/v1/me/preferences/", headers=as_alice),
        ]

    assert [r.status_code for r in responses] == [201, 200, 200, 200, 204, 200]
