"""Two server processes share nothing but Redis and the database: any request can go to either."""

from __future__ import annotations

import httpx
import pytest

from tests.sessions_demo.conftest import PASSWORD, bearer, make_user
from tests.sessions_demo.servers import daphne_servers

pytestmark = [pytest.mark.system, pytest.mark.django_db(transaction=True)]


def test_log_in_on_one_instance_and_work_on_the_other(tmp_path, redis_client):
    make_user("alice")

    with daphne_servers(2, tmp_path) as (one, two), httpx.Client(timeout=10) as http:
        # Log in on one; the other knows the user from the token alone.
        login = http.post(
            f"{one}/api/v1/auth/token/", json={"username": "alice", "password": PASSWORD}
        )
        assert login.status_code == 200
        alice = bearer(login.json()["access"])
        assert http.get(f"{two}/api/v1/me/", headers=alice).json()["username"] == "alice"

        # A draft created on one is read, and its Idempotency-Key replayed, on the other.
        create = {"json": {"title": "Shared"}, "headers": {**alice, "Idempotency-Key": "k-1"}}
        created = http.post(f"{one}/api/v1/drafts/", **create)
        assert created.status_code == 201
        draft_url = created.headers["location"]
        read = http.get(f"{two}{draft_url}", headers=alice)
        assert (read.status_code, read.json()) == (200, created.json())
        replay = http.post(f"{two}/api/v1/drafts/", **create)
        assert (replay.status_code, replay.json()) == (201, created.json())
        assert len(http.get(f"{one}/api/v1/drafts/", headers=alice).json()) == 1

        # An edit on two makes the ETag that one still holds stale.
        edited = http.patch(
            f"{two}{draft_url}", json={"title": "Edited"}, headers={**alice, "If-Match": '"1"'}
        )
        stale = http.patch(
            f"{one}{draft_url}", json={"title": "Mine"}, headers={**alice, "If-Match": '"1"'}
        )
        assert (edited.status_code, stale.status_code) == (200, 412)

        # A refresh token spent on two is refused on one.
        refresh = {"refresh": login.json()["refresh"]}
        assert http.post(f"{two}/api/v1/auth/token/refresh/", json=refresh).status_code == 200
        assert http.post(f"{one}/api/v1/auth/token/refresh/", json=refresh).status_code == 401
