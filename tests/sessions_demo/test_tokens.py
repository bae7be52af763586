"""Tokens: obtain, the bad-token matrix, rotation, verify, logout and revocation, register."""

from __future__ import annotations

import base64
import json
import threading
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connection
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from sessions_demo import keys, services
from sessions_demo.tokens import refresh_token_for, token_pair_for
from tests.sessions_demo.conftest import PASSWORD, bearer, make_user

INVALID_TOKEN = 'Bearer error="invalid_token"'


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def signed(claims: dict, *, key: str | None = None, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key or settings.SIMPLE_JWT["SIGNING_KEY"], algorithm=algorithm)


def test_login_returns_tokens_that_carry_who_the_user_is(asgi, db):
    make_user("admin2", is_staff=True)

    response = asgi.post("/api/v1/auth/token/", json={"username": "admin2", "password": PASSWORD})

    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}
    assert response.headers["cache-control"] == "private, no-store"
    access = claims_of(response.json()["access"])
    refresh = claims_of(response.json()["refresh"])
    user_id = str(get_user_model().objects.get(username="admin2").pk)
    assert {k: access[k] for k in ("user_id", "username", "is_staff", "iss", "aud")} == {
        "user_id": user_id,
        "username": "admin2",
        "is_staff": True,
        "iss": "stateless-cacheable",
        "aud": "stateless-cacheable-api",
    }
    assert access["token_type"] == "access"
    assert refresh["token_type"] == "refresh"
    assert len(access["jti"]) == 32
    assert access["jti"] != refresh["jti"]
    assert access["exp"] - access["iat"] == 300
    assert refresh["exp"] - refresh["iat"] == 86400


def test_a_wrong_password_is_a_401_in_the_error_shape(asgi, alice):
    response = asgi.post("/api/v1/auth/token/", json={"username": "alice", "password": "nope"})

    assert response.status_code == 401
    assert response.json() == {
        "detail": "No active account found with the given credentials",
        "code": "no_active_account",
    }


def test_me_answers_from_the_token(asgi, as_alice, alice):
    response = asgi.get("/api/v1/me/", headers=as_alice)

    assert response.status_code == 200
    assert response.json() == {"id": str(alice.pk), "username": "alice", "is_staff": False}
    assert response.headers["cache-control"] == "private, no-store"
    assert response.headers["vary"] == "Authorization"


def test_me_takes_no_database_query(asgi, as_alice, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = asgi.get("/api/v1/me/", headers=as_alice)

    assert response.status_code == 200


def test_is_staff_comes_from_the_claim(asgi, db):
    admin = make_user("boss", is_staff=True)

    response = asgi.get("/api/v1/me/", headers=bearer(token_pair_for(admin)["access"]))

    assert response.json()["is_staff"] is True


def test_no_api_call_creates_a_django_session(asgi, alice):
    login = asgi.post("/api/v1/auth/token/", json={"username": "alice", "password": PASSWORD})
    headers = bearer(login.json()["access"])

    responses = [
        login,
        asgi.get("/api/v1/me/", headers=headers),
        asgi.post("/api/v1/drafts/", json={"title": "t"}, headers=headers),
        asgi.get("/api/v1/drafts/", headers=headers),
        asgi.post("/api/v1/auth/token/refresh/", json={"refresh": login.json()["refresh"]}),
    ]

    assert [r.status_code for r in responses] == [200, 200, 201, 200, 200]
    assert all("set-cookie" not in r.headers for r in responses)
    assert Session.objects.count() == 0


def test_a_missing_token_is_a_401_that_asks_for_one(asgi, db):
    response = asgi.get("/api/v1/me/")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'
    assert response.json() == {
        "detail": "Authentication credentials were not provided.",
        "code": "not_authenticated",
    }


def _now() -> int:
    return int(claims_of(str(refresh_token_for(get_user_model()(pk=1)).access_token))["iat"])


def _good_claims(user) -> dict:
    return claims_of(token_pair_for(user)["access"])


def _tampered(user) -> str:
    header, payload, signature = token_pair_for(user)["access"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["is_staff"] = True
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


BAD_TOKENS = {
    "malformed": lambda user: "not-a-jwt",
    "expired": lambda user: signed({**_good_claims(user), "exp": _good_claims(user)["iat"] - 1}),
    "tampered": _tampered,
    "alg none": lambda user: jwt.encode(_good_claims(user), None, algorithm="none"),
    "wrong audience": lambda user: signed({**_good_claims(user), "aud": "another-api"}),
    "no audience": lambda user: signed({k: v for k, v in _good_claims(user).items() if k != "aud"}),
    "wrong issuer": lambda user: signed({**_good_claims(user), "iss": "someone-else"}),
    "refresh as access": lambda user: token_pair_for(user)["refresh"],
    "no jti": lambda user: signed({k: v for k, v in _good_claims(user).items() if k != "jti"}),
    "no token_type": lambda user: signed(
        {k: v for k, v in _good_claims(user).items() if k != "token_type"}
    ),
    "other key": lambda user: signed(_good_claims(user), key="another-key-that-is-32-bytes-long!!"),
}


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_a_bad_token_is_a_401_invalid_token(asgi, alice, kind):
    token = BAD_TOKENS[kind](alice)

    response = asgi.get("/api/v1/me/", headers=bearer(token))

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == INVALID_TOKEN
    assert response.json()["code"] == "token_not_valid"
    assert set(response.json()) == {"detail", "code"}


def test_the_token_matrix_messages(asgi, alice):
    details = {
        kind: asgi.get("/api/v1/me/", headers=bearer(make(alice))).json()["detail"]
        for kind, make in BAD_TOKENS.items()
    }

    assert details == {
        "malformed": "Token is invalid",
        "expired": "Token is expired",
        "tampered": "Token is invalid",
        "alg none": "Token is invalid",
        "wrong audience": "Token is invalid",
        "no audience": "Token is invalid",
        "wrong issuer": "Token is invalid",
        "refresh as access": "Token has wrong type",
        "no jti": "Token has no id",
        "no token_type": "Token has no type",
        "other key": "Token is invalid",
    }


def test_a_bearer_header_with_extra_parts_is_a_401(asgi, as_alice):
    response = asgi.get("/api/v1/me/", headers={"Authorization": "Bearer a b"})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == INVALID_TOKEN
    assert set(response.json()) == {"detail", "code"}


def test_refresh_rotates_and_the_old_refresh_token_is_refused(asgi, alice_tokens):
    first = asgi.post("/api/v1/auth/token/refresh/", json={"refresh": alice_tokens["refresh"]})
    again = asgi.post("/api/v1/auth/token/refresh/", json={"refresh": alice_tokens["refresh"]})
    second = asgi.post("/api/v1/auth/token/refresh/", json={"refresh": first.json()["refresh"]})

    assert first.status_code == 200
    assert set(first.json()) == {"access", "refresh"}
    assert first.json()["refresh"] != alice_tokens["refresh"]
    assert again.status_code == 401
    assert again.json() == {"detail": "Token is blacklisted", "code": "token_not_valid"}
    assert second.status_code == 200
    assert asgi.get("/api/v1/me/", headers=bearer(first.json()["access"])).status_code == 200


def test_refresh_reads_the_current_claims_of_the_user(asgi, alice, alice_tokens):
    alice.is_staff = True
    alice.save()

    response = asgi.post("/api/v1/auth/token/refresh/", json={"refresh": alice_tokens["refresh"]})

    assert claims_of(response.json()["access"])["is_staff"] is True


def test_refresh_for_a_deactivated_user_is_refused(asgi, alice, alice_tokens):
    alice.is_active = False
    alice.save()

    response = asgi.post("/api/v1/auth/token/refresh/", json={"refresh": alice_tokens["refresh"]})

    assert response.status_code == 401
    assert response.json()["code"] == "no_active_account"


def test_an_access_token_is_not_a_refresh_token(asgi, alice_tokens):
    response = asgi.post("/api/v1/auth/token/refresh/", json={"refresh": alice_tokens["access"]})

    assert response.status_code == 401
    assert response.json() == {"detail": "Token has wrong type", "code": "token_not_valid"}


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_refreshes_with_one_token_get_one_new_pair():
    refresh = token_pair_for(make_user("racer"))["refresh"]
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def spend() -> None:
        start.wait()
        try:
            services.refresh_token_rotate(refresh=refresh)
            outcomes.append("rotated")
        except TokenError as exc:
            outcomes.append(str(exc))
        finally:
            connection.close()  # this thread's own connection, or the test database stays in use

    threads = [threading.Thread(target=spend) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["Token is blacklisted", "rotated"]
    assert BlacklistedToken.objects.count() == 1


def test_verify_accepts_a_valid_token_and_refuses_a_spent_one(asgi, alice_tokens):
    valid = asgi.post("/api/v1/auth/token/verify/", json={"token": alice_tokens["access"]})
    asgi.post("/api/v1/auth/token/refresh/", json={"refresh": alice_tokens["refresh"]})
    spent = asgi.post("/api/v1/auth/token/verify/", json={"token": alice_tokens["refresh"]})
    garbage = asgi.post("/api/v1/auth/token/verify/", json={"token": "x.y.z"})

    assert (valid.status_code, valid.json()) == (200, {})
    assert spent.status_code == 401
    assert spent.json() == {"detail": "Token is blacklisted", "code": "token_not_valid"}
    assert garbage.status_code == 401


def test_logout_blacklists_the_refresh_token_but_the_access_token_lives_on(
    asgi, alice_tokens, as_alice
):
    response = asgi.post(
        "/api/v1/auth/logout/", json={"refresh": alice_tokens["refresh"]}, headers=as_alice
    )

    assert response.status_code == 204
    refresh = asgi.post("/api/v1/auth/token/refresh/", json={"refresh": alice_tokens["refresh"]})
    assert refresh.status_code == 401
    # The documented limit: without JWT_REVOKE_ACCESS_ON_LOGOUT it works until it expires.
    assert asgi.get("/api/v1/me/", headers=as_alice).status_code == 200


def test_logout_with_revocation_on_denies_the_access_token_until_it_expires(
    asgi, alice_tokens, as_alice, settings, redis_client
):
    settings.SESSIONS_DEMO = {**settings.SESSIONS_DEMO, "REVOKE_ACCESS_ON_LOGOUT": True}
    jti = claims_of(alice_tokens["access"])["jti"]

    response = asgi.post(
        "/api/v1/auth/logout/", json={"refresh": alice_tokens["refresh"]}, headers=as_alice
    )

    assert response.status_code == 204
    me = asgi.get("/api/v1/me/", headers=as_alice)
    assert me.status_code == 401
    assert me.headers["www-authenticate"] == INVALID_TOKEN
    assert me.json() == {"detail": "Token has been revoked.", "code": "token_revoked"}
    assert 0 < redis_client.ttl(keys.denied_access_token(jti)) <= 300
    verify = asgi.post("/api/v1/auth/token/verify/", json={"token": alice_tokens["access"]})
    assert verify.status_code == 401


def test_logout_is_all_or_nothing_when_redis_is_down(
    asgi, alice_tokens, as_alice, settings, redis_down
):
    settings.SESSIONS_DEMO = {**settings.SESSIONS_DEMO, "REVOKE_ACCESS_ON_LOGOUT": True}

    response = asgi.post(
        "/api/v1/auth/logout/", json={"refresh": alice_tokens["refresh"]}, headers=as_alice
    )

    # The deny-list write failed, so the refresh token's blacklisting was rolled back with it.
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"
    assert BlacklistedToken.objects.count() == 0


def test_logout_with_a_bad_refresh_token_is_a_401(asgi, as_alice):
    response = asgi.post("/api/v1/auth/logout/", json={"refresh": "nope"}, headers=as_alice)

    assert response.status_code == 401
    assert response.json() == {"detail": "Token is invalid", "code": "token_not_valid"}


def test_register_then_log_in(asgi, db):
    response = asgi.post("/api/v1/auth/register/", json={"username": "carol", "password": PASSWORD})
    login = asgi.post("/api/v1/auth/token/", json={"username": "carol", "password": PASSWORD})

    assert response.status_code == 201
    assert response.json() == {
        "id": str(get_user_model().objects.get(username="carol").pk),
        "username": "carol",
    }
    assert login.status_code == 200


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"username": "carol", "password": "123"},
            {
                "password": [
                    "This password is too short. It must contain at least 8 characters.",
                    "This password is too common.",
                    "This password is entirely numeric.",
                ]
            },
        ),
        (
            {"username": "quetzalcoatl", "password": "quetzalcoatl7"},
            {"password": ["The password is too similar to the username."]},
        ),
        (
            {"username": "no spaces", "password": PASSWORD},
            {
                "username": [
                    "Enter a valid username. This value may contain only letters, numbers, "
                    "and @/./+/-/_ characters."
                ]
            },
        ),
        (
            {"username": "alice", "password": PASSWORD},
            {"username": ["A user with that username already exists."]},
        ),
        ({}, {"username": ["This field is required."], "password": ["This field is required."]}),
    ],
)
def test_register_validates_like_django(asgi, alice, body, errors):
    response = asgi.post("/api/v1/auth/register/", json=body)

    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid input.", "code": "invalid", "errors": errors}


def test_a_body_that_is_not_json_is_a_400(asgi, as_alice):
    response = asgi.post(
        "/api/v1/drafts/",
        content=b"{not json",
        headers={**as_alice, "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_the_refresh_lifetime_and_access_lifetime_come_from_settings():
    assert settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"] == timedelta(minutes=5)
    assert settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"] == timedelta(days=1)
