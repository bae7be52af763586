"""Idempotency-Key on POST /api/v1/drafts/: replay, mismatch, in flight, concurrency, expiry."""

from __future__ import annotations

import threading

import pytest
import redis

from config.redis_wiring import app_client
from sessions_demo import idempotency, keys, selectors
from sessions_demo.exceptions import IdempotencyInFlight

DRAFTS = "/api/v1/drafts/"


def post(asgi, headers, key, body=None):
    return asgi.post(
        DRAFTS, json=body or {"title": "Once"}, headers={**headers, "Idempotency-Key": key}
    )


def test_a_retry_returns_the_same_status_and_body_and_creates_one_draft(asgi, as_alice):
    first = post(asgi, as_alice, "retry-1")
    retry = post(asgi, as_alice, "retry-1")

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    assert retry.headers["etag"] == first.headers["etag"]
    assert retry.headers["location"] == first.headers["location"]
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert [d["id"] for d in asgi.get(DRAFTS, headers=as_alice).json()] == [first.json()["id"]]


def test_the_replay_is_the_first_answer_even_after_the_draft_changed(asgi, as_alice):
    first = post(asgi, as_alice, "retry-2")
    asgi.request("PATCH", first.headers["location"], json={"title": "Edited"}, headers=as_alice)

    retry = post(asgi, as_alice, "retry-2")

    assert retry.json() == first.json()


def test_a_retry_after_the_draft_was_deleted_is_a_410_and_creates_nothing(asgi, as_alice):
    first = post(asgi, as_alice, "retry-3")
    deleted = asgi.request("DELETE", first.headers["location"], headers=as_alice)

    retries = [post(asgi, as_alice, "retry-3") for _ in range(2)]

    assert deleted.status_code == 204
    assert [r.status_code for r in retries] == [410, 410]
    assert retries[0].json() == {
        "detail": "The draft this Idempotency-Key created has since been deleted or has "
        "expired; send a new key to create another.",
        "code": "idempotency_replay_gone",
    }
    assert "location" not in retries[0].headers
    assert asgi.get(DRAFTS, headers=as_alice).json() == []
    assert post(asgi, as_alice, "retry-4").status_code == 201


def test_the_same_key_with_another_body_is_a_422(asgi, as_alice):
    post(asgi, as_alice, "reused", {"title": "One"})

    response = post(asgi, as_alice, "reused", {"title": "Another"})

    assert response.status_code == 422
    assert response.json() == {
        "detail": "This Idempotency-Key was already used with a different request body.",
        "code": "idempotency_key_reused",
    }
    assert len(asgi.get(DRAFTS, headers=as_alice).json()) == 1


def test_a_retry_while_the_first_request_is_in_flight_is_a_409(asgi, as_alice, alice):
    fingerprint = idempotency.fingerprint("POST", DRAFTS, {"title": "Once"})
    idempotency.claim(user_id=str(alice.pk), key="busy", request_fingerprint=fingerprint)

    response = post(asgi, as_alice, "busy")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "A request with this Idempotency-Key is still being processed; retry later.",
        "code": "idempotency_in_flight",
    }
    assert asgi.get(DRAFTS, headers=as_alice).json() == []


def test_a_claim_its_request_could_not_give_back_lapses_after_the_lock_ttl(
    asgi, as_alice, alice, redis_client, monkeypatch
):
    from sessions_demo import drafts_store

    def node_lost(*args, **kwargs):
        raise redis.ConnectionError("Redis closed the connection")

    # The create and the release both fail: the node holding the key died mid-request.
    monkeypatch.setattr(drafts_store, "create", node_lost)
    monkeypatch.setattr(idempotency, "release", node_lost)
    failed = post(asgi, as_alice, "orphan")
    monkeypatch.undo()
    (key,) = redis_client.keys(keys.idempotency(str(alice.pk), "*"))

    assert failed.status_code == 503
    assert post(asgi, as_alice, "orphan").status_code == 409
    assert 0 < redis_client.ttl(key) <= 10  # IDEMPOTENCY_LOCK_TTL, then a retry runs again


def test_a_request_whose_claim_lapsed_and_was_taken_over_stores_nothing(alice):
    from sessions_demo import services

    user_id = str(alice.pk)
    fingerprint = idempotency.fingerprint("POST", DRAFTS, {"title": "Slow"})
    slow, _ = idempotency.claim(user_id=user_id, key="slow", request_fingerprint=fingerprint)
    assert slow is not None
    app_client().delete(slow.redis_key)  # the lock TTL ran out while the request was running
    retry, _ = idempotency.claim(user_id=user_id, key="slow", request_fingerprint=fingerprint)

    with pytest.raises(IdempotencyInFlight):
        services.draft_create(user_id=user_id, claim=slow, title="Slow", body="")
    created = services.draft_create(user_id=user_id, claim=retry, title="Slow", body="")

    assert [d["id"] for d in selectors.draft_list(user_id=user_id)] == [created["id"]]


def test_concurrent_duplicates_create_one_draft(asgi, as_alice):
    start = threading.Barrier(8)
    responses = []

    def send() -> None:
        start.wait()
        responses.append(post(asgi, as_alice, "double-click"))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    drafts = asgi.get(DRAFTS, headers=as_alice).json()
    assert len(drafts) == 1
    assert {r.status_code for r in responses} <= {201, 409}
    assert all(r.json()["id"] == drafts[0]["id"] for r in responses if r.status_code == 201)


def test_keys_are_per_user(asgi, as_alice, as_bob):
    alices = post(asgi, as_alice, "shared-key")
    bobs = post(asgi, as_bob, "shared-key")

    assert (alices.status_code, bobs.status_code) == (201, 201)
    assert alices.json()["id"] != bobs.json()["id"]


def test_a_finished_key_is_kept_24_hours(asgi, as_alice, alice, redis_client):
    post(asgi, as_alice, "kept")

    (key,) = redis_client.keys(keys.idempotency(str(alice.pk), "*"))

    assert 86400 - 5 <= redis_client.ttl(key) <= 86400


def test_a_failed_request_gives_its_key_back(asgi, as_alice, settings):
    settings.SESSIONS_DEMO = {**settings.SESSIONS_DEMO, "MAX_DRAFTS": 1}
    existing = post(asgi, as_alice, "first")
    refused = post(asgi, as_alice, "second", {"title": "Later"})
    asgi.request("DELETE", existing.headers["location"], headers=as_alice)

    retried = post(asgi, as_alice, "second", {"title": "Later"})

    assert refused.status_code == 409
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers


def test_an_invalid_body_is_a_400_and_claims_nothing(asgi, as_alice):
    invalid = post(asgi, as_alice, "k", {"title": ""})
    valid = post(asgi, as_alice, "k", {"title": "Fixed"})

    assert invalid.status_code == 400
    assert valid.status_code == 201


def test_a_malformed_key_is_a_400(asgi, as_alice):
    response = post(asgi, as_alice, "x" * 256)

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "Idempotency-Key": ["Must be 1 to 255 visible ASCII characters."]
    }
