"""Drafts in Redis: CRUD, isolation between users, sliding TTL, limits, If-Match, Redis down."""

from __future__ import annotations

import json

import pytest
import redis

from sessions_demo import drafts_store, keys
from tests.support import wait_for

DRAFTS = "/api/v1/drafts/"
SEVEN_DAYS = 7 * 24 * 3600


def create(asgi, headers, **body) -> dict:
    response = asgi.post(
        DRAFTS, json={"title": "Hello", "body": "First words.", **body}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_create_read_update_delete(asgi, as_alice, alice):
    created = asgi.post(DRAFTS, json={"title": "Hello", "body": "First words."}, headers=as_alice)
    draft = created.json()
    url = f"{DRAFTS}{draft['id']}/"

    assert created.status_code == 201
    assert created.headers["etag"] == '"1"'
    assert created.headers["location"] == url
    assert {k: draft[k] for k in ("title", "body", "version")} == {
        "title": "Hello",
        "body": "First words.",
        "version": 1,
    }
    assert draft["created_at"] == draft["updated_at"]

    read = asgi.get(url, headers=as_alice)
    assert (read.status_code, read.json(), read.headers["etag"]) == (200, draft, '"1"')

    put = asgi.request("PUT", url, json={"title": "Hello again", "body": "More."}, headers=as_alice)
    assert put.status_code == 200
    assert put.headers["etag"] == '"2"'
    assert {k: put.json()[k] for k in ("title", "body", "version")} == {
        "title": "Hello again",
        "body": "More.",
        "version": 2,
    }

    patch = asgi.request("PATCH", url, json={"body": "Only the body."}, headers=as_alice)
    assert patch.status_code == 200
    assert {k: patch.json()[k] for k in ("title", "body", "version")} == {
        "title": "Hello again",
        "body": "Only the body.",
        "version": 3,
    }
    assert asgi.get(url, headers=as_alice).json() == patch.json()

    deleted = asgi.request("DELETE", url, headers=as_alice)
    assert deleted.status_code == 204
    gone = asgi.get(url, headers=as_alice)
    assert gone.status_code == 404
    assert gone.json() == {"detail": "No such draft.", "code": "not_found"}


def test_list_shows_summaries_most_recently_changed_first(asgi, as_alice):
    older = create(asgi, as_alice, title="Older")
    newer = create(asgi, as_alice, title="Newer")
    asgi.request(
        "PATCH", f"{DRAFTS}{older['id']}/", json={"title": "Older, edited"}, headers=as_alice
    )

    response = asgi.get(DRAFTS, headers=as_alice)

    assert response.status_code == 200
    assert [(d["id"], d["title"], d["version"]) for d in response.json()] == [
        (older["id"], "Older, edited", 2),
        (newer["id"], "Newer", 1),
    ]
    assert all("body" not in d for d in response.json())


def test_drafts_are_stored_in_redis_per_user(asgi, as_alice, alice, redis_client):
    draft = create(asgi, as_alice)

    stored = redis_client.hgetall(keys.drafts(str(alice.pk)))

    assert list(stored) == [draft["id"].encode()]
    assert json.loads(stored[draft["id"].encode()]) == draft


def test_another_users_draft_is_a_404_like_any_unknown_id(asgi, as_alice, as_bob):
    draft = create(asgi, as_alice)
    url = f"{DRAFTS}{draft['id']}/"

    responses = [
        asgi.get(url, headers=as_bob),
        asgi.request("PUT", url, json={"title": "mine now"}, headers=as_bob),
        asgi.request("PATCH", url, json={"title": "mine now"}, headers=as_bob),
        asgi.request("DELETE", url, headers=as_bob),
        asgi.get(f"{DRAFTS}no-such-id/", headers=as_bob),
    ]

    assert [r.status_code for r in responses] == [404] * 5
    assert all(r.json() == {"detail": "No such draft.", "code": "not_found"} for r in responses)
    assert asgi.get(DRAFTS, headers=as_bob).json() == []
    assert asgi.get(url, headers=as_alice).json() == draft


def test_every_drafts_response_is_private_and_varies_on_authorization(asgi, as_alice):
    draft = create(asgi, as_alice)

    responses = [
        asgi.get(DRAFTS, headers=as_alice),
        asgi.get(f"{DRAFTS}{draft['id']}/", headers=as_alice),
        asgi.get(f"{DRAFTS}unknown/", headers=as_alice),
        asgi.get(DRAFTS),
    ]

    assert [r.status_code for r in responses] == [200, 200, 404, 401]
    assert all(r.headers["cache-control"] == "private, no-store" for r in responses)
    assert all(r.headers["vary"] == "Authorization" for r in responses)


def test_drafts_need_a_token(asgi, db):
    response = asgi.post(DRAFTS, json={"title": "x"})

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


# --- TTL ------------------------------------------------------------------------------------------


def test_drafts_have_a_seven_day_ttl_that_each_read_restarts(asgi, as_alice, alice, redis_client):
    draft = create(asgi, as_alice)
    key = keys.drafts(str(alice.pk))
    assert SEVEN_DAYS - 5 <= redis_client.ttl(key) <= SEVEN_DAYS
    redis_client.expire(key, 60)

    asgi.get(f"{DRAFTS}{draft['id']}/", headers=as_alice)

    assert SEVEN_DAYS - 5 <= redis_client.ttl(key) <= SEVEN_DAYS


def test_the_ttl_comes_from_settings(asgi, as_alice, alice, redis_client, settings):
    settings.SESSIONS_DEMO = {**settings.SESSIONS_DEMO, "DRAFT_TTL": 120}

    create(asgi, as_alice)

    assert 115 <= redis_client.ttl(keys.drafts(str(alice.pk))) <= 120


def test_drafts_are_gone_when_their_ttl_runs_out(asgi, as_alice, alice, redis_client):
    draft = create(asgi, as_alice)
    key = keys.drafts(str(alice.pk))

    redis_client.pexpire(key, 1)
    wait_for(lambda: not redis_client.exists(key), timeout=5, what="the drafts to expire")

    assert asgi.get(f"{DRAFTS}{draft['id']}/", headers=as_alice).status_code == 404
    assert asgi.get(DRAFTS, headers=as_alice).json() == []


# --- limits and validation ------------------------------------------------------------------------


def test_a_draft_of_exactly_64_kib_fits_and_one_byte_more_is_a_413(asgi, as_alice):
    fits = asgi.post(DRAFTS, json={"title": "T", "body": "é" * 32767 + "x"}, headers=as_alice)
    too_big = asgi.post(DRAFTS, json={"title": "T", "body": "é" * 32768}, headers=as_alice)

    assert fits.status_code == 201
    assert too_big.status_code == 413
    assert too_big.json() == {
        "detail": "A draft holds at most 65536 bytes of title and body; this is 65537.",
        "code": "draft_too_large",
    }
    assert len(asgi.get(DRAFTS, headers=as_alice).json()) == 1


def test_an_edit_that_makes_a_draft_too_large_is_a_413_and_changes_nothing(asgi, as_alice):
    draft = create(asgi, as_alice)
    url = f"{DRAFTS}{draft['id']}/"

    response = asgi.request("PATCH", url, json={"body": "x" * 70000}, headers=as_alice)

    assert response.status_code == 413
    assert asgi.get(url, headers=as_alice).json() == draft


def test_the_hundred_and_first_draft_is_refused(asgi, as_alice, alice):
    for number in range(100):
        drafts_store.create(str(alice.pk), {"id": f"d{number}", "title": "t", "body": ""})

    response = asgi.post(DRAFTS, json={"title": "one too many"}, headers=as_alice)

    assert response.status_code == 409
    assert response.json() == {
        "detail": "You have 100 drafts, the most allowed; delete one first.",
        "code": "too_many_drafts",
    }
    assert drafts_store.count(str(alice.pk)) == 100


def test_the_draft_limit_comes_from_settings(asgi, as_alice, settings):
    settings.SESSIONS_DEMO = {**settings.SESSIONS_DEMO, "MAX_DRAFTS": 2}
    create(asgi, as_alice)
    create(asgi, as_alice)

    response = asgi.post(DRAFTS, json={"title": "third"}, headers=as_alice)

    assert response.status_code == 409
    assert len(asgi.get(DRAFTS, headers=as_alice).json()) == 2


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"title": ["This field is required."]}),
        ({"title": "  "}, {"title": ["This field may not be blank."]}),
        ({"title": "x" * 201}, {"title": ["Ensure this field has no more than 200 characters."]}),
        ({"title": "t", "body": None}, {"body": ["This field may not be null."]}),
        ({"title": "t", "body": ["a list"]}, {"body": ["Not a valid string."]}),
        (
            ["not", "an", "object"],
            {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]},
        ),
    ],
)
def test_invalid_drafts_are_a_400_naming_the_field(asgi, as_alice, body, errors):
    response = asgi.post(DRAFTS, json=body, headers=as_alice)

    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid input.", "code": "invalid", "errors": errors}
    assert asgi.get(DRAFTS, headers=as_alice).json() == []


# --- If-Match -------------------------------------------------------------------------------------


def test_a_write_with_a_stale_if_match_is_a_412_and_changes_nothing(asgi, as_alice):
    draft = create(asgi, as_alice)
    url = f"{DRAFTS}{draft['id']}/"
    asgi.request("PATCH", url, json={"title": "Edited in another tab"}, headers=as_alice)
    current = asgi.get(url, headers=as_alice).json()

    responses = [
        asgi.request("PUT", url, json={"title": "Mine"}, headers={**as_alice, "If-Match": '"1"'}),
        asgi.request("PATCH", url, json={"title": "Mine"}, headers={**as_alice, "If-Match": '"1"'}),
        asgi.request("DELETE", url, headers={**as_alice, "If-Match": '"1"'}),
        asgi.request(
            "PATCH", url, json={"title": "Mine"}, headers={**as_alice, "If-Match": 'W/"2"'}
        ),
    ]

    assert [r.status_code for r in responses] == [412] * 4
    assert responses[0].json() == {
        "detail": "The draft has changed since you read it (If-Match does not match its ETag).",
        "code": "precondition_failed",
    }
    assert asgi.get(url, headers=as_alice).json() == current


def test_a_write_with_the_current_etag_or_a_star_succeeds(asgi, as_alice):
    draft = create(asgi, as_alice)
    url = f"{DRAFTS}{draft['id']}/"

    first = asgi.request("PATCH", url, json={"title": "A"}, headers={**as_alice, "If-Match": '"1"'})
    second = asgi.request(
        "PATCH", url, json={"title": "B"}, headers={**as_alice, "If-Match": '"0", "2"'}
    )
    third = asgi.request("PATCH", url, json={"title": "C"}, headers={**as_alice, "If-Match": "*"})
    deleted = asgi.request("DELETE", url, headers={**as_alice, "If-Match": '"4"'})

    assert [r.status_code for r in (first, second, third, deleted)] == [200, 200, 200, 204]
    assert [r.headers["etag"] for r in (first, second, third)] == ['"2"', '"3"', '"4"']


def test_if_match_on_a_missing_draft_is_a_404(asgi, as_alice):
    response = asgi.request(
        "PATCH", f"{DRAFTS}nothing/", json={"title": "x"}, headers={**as_alice, "If-Match": "*"}
    )

    assert response.status_code == 404


def test_a_write_that_loses_a_race_after_its_read_changes_nothing(alice):
    user_id = str(alice.pk)
    drafts_store.create(user_id, {"id": "d1", "title": "t", "body": "", "version": 1})
    drafts_store.replace(
        user_id, {"id": "d1", "title": "theirs", "body": "", "version": 2}, expected_version=1
    )

    outcome = drafts_store.replace(
        user_id, {"id": "d1", "title": "mine", "body": "", "version": 2}, expected_version=1
    )

    assert outcome == "changed"
    assert drafts_store.get(user_id, "d1")["title"] == "theirs"
    assert drafts_store.delete(user_id, "d1", expected_version=1) == "changed"
    assert drafts_store.delete(user_id, "nope", expected_version=1) == "missing"


# --- Redis down -----------------------------------------------------------------------------------


def test_redis_down_is_a_503_with_a_clear_body(asgi, as_alice, redis_down):
    responses = [
        asgi.get(DRAFTS, headers=as_alice),
        asgi.post(DRAFTS, json={"title": "t"}, headers={**as_alice, "Idempotency-Key": "k1"}),
        asgi.request("PATCH", f"{DRAFTS}d1/", json={"title": "t"}, headers=as_alice),
    ]

    assert [r.status_code for r in responses] == [503] * 3
    assert all(
        r.json()
        == {"detail": "Redis is unavailable; try again shortly.", "code": "service_unavailable"}
        for r in responses
    )
    assert all(r.headers["cache-control"] == "private, no-store" for r in responses)


def test_a_refused_create_writes_nothing(asgi, as_alice, alice, settings, redis_client):
    settings.SESSIONS_DEMO = {**settings.SESSIONS_DEMO, "MAX_DRAFTS": 1}
    create(asgi, as_alice)
    # The app's keys only: the gateway's throttle and per-second metrics keys move on their own.
    gateway = f"{settings.REDIS_KEY_PREFIX}:gw:".encode()

    def app_keys() -> list[bytes]:
        return sorted(key for key in redis_client.keys("*") if not key.startswith(gateway))

    before = app_keys()

    refused = asgi.post(DRAFTS, json={"title": "t"}, headers={**as_alice, "Idempotency-Key": "k2"})

    # The limit check, the draft and the idempotency record are one Lua script: all or nothing.
    assert refused.status_code == 409
    assert before != []
    assert app_keys() == before


def test_a_draft_no_replica_acknowledged_in_time_is_a_503_and_its_retry_is_answered_once(
    asgi, as_alice, settings
):
    # The test Redis has no replica: a WAIT for one times out, as when replication lags.
    settings.REDIS_WAIT_REPLICAS = 1
    settings.REDIS_TIMEOUT = 0.2
    headers = {**as_alice, "Idempotency-Key": "draft-1"}

    unacknowledged = asgi.post(DRAFTS, json={"title": "Hello"}, headers=headers)
    # Its record is stored, but still no replica has it: the replay is no acknowledgement either.
    replayed_unacknowledged = asgi.post(DRAFTS, json={"title": "Hello"}, headers=headers)
    settings.REDIS_WAIT_REPLICAS = 0
    retried = asgi.post(DRAFTS, json={"title": "Hello"}, headers=headers)

    assert unacknowledged.status_code == 503
    assert unacknowledged.json()["code"] == "service_unavailable"
    assert replayed_unacknowledged.status_code == 503
    assert (retried.status_code, retried.headers["idempotent-replayed"]) == (201, "true")
    assert [d["title"] for d in asgi.get(DRAFTS, headers=as_alice).json()] == ["Hello"]


def test_a_create_that_never_reached_redis_leaves_its_key_free_for_the_retry(
    asgi, as_alice, monkeypatch
):
    from sessions_demo import drafts_store

    store = drafts_store.create
    failures = iter([redis.ConnectionError("Redis closed the connection")])

    def create_failing_once(*args, **kwargs):
        for failure in failures:
            raise failure
        return store(*args, **kwargs)

    monkeypatch.setattr(drafts_store, "create", create_failing_once)
    headers = {**as_alice, "Idempotency-Key": "draft-2"}

    failed = asgi.post(DRAFTS, json={"title": "Hello"}, headers=headers)
    retried = asgi.post(DRAFTS, json={"title": "Hello"}, headers=headers)

    assert failed.status_code == 503
    assert retried.status_code == 201  # not 409: the claim the failed attempt held was released
