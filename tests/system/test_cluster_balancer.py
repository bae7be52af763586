"""Through nginx, round-robin, no affinity: any request can land on either instance."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from websockets.asyncio.client import connect

from tests import support
from tests.system.conftest import AUTH_RATE, upstream

pytestmark = pytest.mark.system


def bearer(access: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access}"}


def test_a_token_from_one_instance_works_on_the_other_and_a_rotated_refresh_is_refused(cluster):
    with cluster.client() as http:
        login = http.post(
            "/api/v1/auth/token/", json={"username": "alice", "password": "cluster-test-password"}
        )
        me = http.get("/api/v1/me/", headers=bearer(login.json()["access"]))
        refresh = {"refresh": login.json()["refresh"]}
        rotated = http.post("/api/v1/auth/token/refresh/", json=refresh)
        replayed = http.post("/api/v1/auth/token/refresh/", json=refresh)

    assert (login.status_code, me.status_code, me.json()["username"]) == (200, 200, "alice")
    assert upstream(login) != upstream(me)
    assert (rotated.status_code, replayed.status_code) == (200, 401)
    assert upstream(rotated) != upstream(replayed)
    assert replayed.json()["code"] == "token_not_valid"


def test_a_draft_written_through_one_is_read_through_the_other_and_a_retry_creates_it_once(
    cluster,
):
    alice = bearer(cluster.token("alice")["access"])
    key = {"Idempotency-Key": f"cluster-{uuid.uuid4()}"}
    with cluster.client() as http:
        created = http.post("/api/v1/drafts/", json={"title": "Both"}, headers={**alice, **key})
        read = http.get(created.headers["location"], headers=alice)
        http.get("/api/v1/drafts/", headers=alice)  # round-robin: the retry goes to the other
        retried = http.post("/api/v1/drafts/", json={"title": "Both"}, headers={**alice, **key})
        listed = http.get("/api/v1/drafts/", headers=alice)

    assert created.status_code == 201
    assert (read.status_code, read.json()) == (200, created.json())
    assert upstream(created) != upstream(read)
    assert (retried.status_code, retried.json()) == (201, created.json())
    assert retried.headers["idempotent-replayed"] == "true"
    assert upstream(retried) != upstream(created)
    assert [draft["id"] for draft in listed.json()].count(created.json()["id"]) == 1


def test_a_product_update_through_one_instance_is_read_through_both_despite_both_caches(cluster):
    admin = bearer(cluster.token("admin")["access"])
    path = "/api/v1/products/3/"
    with cluster.client() as http:
        # Given: the product is in the gateway's cache and in nginx's, read through each instance.
        before = [http.get(path) for _ in range(4)]
        # When: a staff user changes it through the load balancer.
        etag = before[-1].headers["etag"]
        updated = http.patch(path, json={"stock": 7}, headers={**admin, "If-Match": etag})
        # Then: the next reads, one on each instance, see it.
        after = [http.get(path) for _ in range(2)]

    # nginx stored the first answer, and had each later one confirmed by a 304 from the gateway.
    edge = [r.headers["x-edge-cache"] for r in before]
    assert edge == ["MISS", "REVALIDATED", "REVALIDATED", "REVALIDATED"]
    assert updated.status_code == 200
    assert [(r.status_code, r.json()["stock"], r.headers["etag"]) for r in after] == [
        (200, 7, updated.headers["etag"])
    ] * 2
    # The purge reached nginx (BAN by tag: acknowledged; see deploy/nginx.conf).
    purges = cluster.cluster.run_dir / "purge.log"
    support.wait_for(
        lambda: '"BAN / HTTP/1.1" 204' in purges.read_text(), timeout=10, what="the BAN at nginx"
    )


def test_a_purge_by_url_refreshes_the_edge_copy(cluster):
    admin = bearer(cluster.token("admin")["access"])
    with cluster.client() as http:
        http.get("/api/v1/products/4/")
        purged = http.post(
            "/api/v1/gateway/purge/", json={"urls": ["/api/v1/products/4/"]}, headers=admin
        )
    purges = cluster.cluster.run_dir / "purge.log"

    assert purged.status_code == 200
    support.wait_for(
        lambda: '"PURGE /api/v1/products/4/ HTTP/1.1" 200' in purges.read_text(),
        timeout=10,
        what="the PURGE at nginx",
    )


def test_the_throttle_admits_exactly_the_configured_number_across_both_instances(cluster):
    limit = int(AUTH_RATE.split("/")[0])
    # An address of its own (127.0.0.2 is loopback too): nginx forwards it, the gateway trusts
    # that one hop, and the login budget of 127.0.0.1 is left alone.
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with cluster.client(transport=transport) as http:
        answers = [
            http.post("/api/v1/auth/token/", json={"username": "nobody", "password": "wrong"})
            for _ in range(limit + 5)
        ]

    statuses = [answer.status_code for answer in answers]
    assert statuses == [401] * limit + [429] * 5
    assert len({upstream(answer) for answer in answers[:limit]}) == 2
    assert answers[-1].json()["code"] == "throttled"


def test_websocket_clients_on_both_instances_get_the_same_ticks_in_order(cluster):
    ws_url = cluster.base_url.replace("http://", "ws://") + "/ws/quotes/?symbols=ACME,BOLT"

    async def scenario():
        async with (
            connect(ws_url, origin=cluster.base_url, open_timeout=10) as one,
            connect(ws_url, origin=cluster.base_url, open_timeout=10) as two,
        ):
            snapshots = [json.loads(await one.recv()), json.loads(await two.recv())]
            start = max(snapshot["seq"] for snapshot in snapshots)
            ticks = await asyncio.wait_for(
                asyncio.gather(
                    support.next_ticks(one, 3, after=start), support.next_ticks(two, 3, after=start)
                ),
                timeout=15,
            )
            hosts = [one.response.headers["x-upstream"], two.response.headers["x-upstream"]]
        return start, hosts, ticks

    start, hosts, (first, second) = asyncio.run(scenario())

    assert hosts[0] != hosts[1]
    assert [tick["seq"] for tick in first] == [start + 1, start + 2, start + 3]
    assert first == second
