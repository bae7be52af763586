"""Faults, one at a time, through the load balancer: what each does to the traffic, and recovery.

These run last in the session and in this order (an instance killed, Redis restarted, PostgreSQL
stopped); each test leaves the cluster whole again. The recovery times are printed (`-s`).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests import support
from tests.system.conftest import PRODUCTS, ClusterUnderTest, upstream

pytestmark = pytest.mark.system

REDIS_DOWN = {"detail": "Redis is unavailable; try again shortly.", "code": "service_unavailable"}
DATABASE_DOWN = {
    "detail": "The database is unavailable; try again shortly.",
    "code": "service_unavailable",
}


def bearer(access: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access}"}


def report(figure: str) -> None:
    print(f"[cluster figures] {figure}", flush=True)


async def load(http: httpx.AsyncClient, auth: dict, rounds: int, outcome: dict) -> None:
    """One read and one draft create a round; a create is retried with its key until answered."""
    for index in range(rounds):
        read = await http.get(f"/api/v1/products/{index % PRODUCTS + 1}/")
        outcome["reads"].append(read.status_code)
        key = {"Idempotency-Key": str(uuid.uuid4())}
        for _attempt in range(5):
            created = await http.post(
                "/api/v1/drafts/", json={"title": f"load {index}"}, headers={**auth, **key}
            )
            if created.status_code == 201:
                outcome["acknowledged"].add(created.json()["id"])
                break
            outcome["write_errors"].append(created.status_code)
        outcome["keys"] += 1


def test_killing_an_instance_mid_load_loses_no_write_and_fails_no_read(cluster: ClusterUnderTest):
    auth = bearer(cluster.token("bob")["access"])
    ws_url = cluster.base_url.replace("http://", "ws://") + "/ws/quotes/?symbols=ACME"
    outcome: dict = {"reads": [], "write_errors": [], "acknowledged": set(), "keys": 0}

    async def scenario():
        async with httpx.AsyncClient(base_url=cluster.base_url, timeout=10) as http:
            socket = await connect(ws_url, origin=cluster.base_url, open_timeout=10)
            victim = socket.response.headers["x-upstream"]
            seqs = [json.loads(await socket.recv())["seq"]]  # the snapshot's

            async def follow() -> None:
                try:
                    async for raw in socket:
                        message = json.loads(raw)
                        if message["type"] == "tick":
                            seqs.append(message["seq"])
                except ConnectionClosed:
                    pass

            following = asyncio.create_task(follow())
            await load(http, auth, 20, outcome)
            # When: the instance that holds the WebSocket is killed, mid-load.
            index = cluster.cluster.app_ports.index(int(victim.rsplit(":", 1)[1]))
            process = cluster.cluster.instances[index]
            cluster.cluster.forget(process)
            os.kill(process.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            await load(http, auth, 40, outcome)
            await asyncio.wait_for(following, timeout=10)
            # Its client reconnects (to the survivor) and resumes from the last tick it saw.
            last = seqs[-1]
            async with connect(f"{ws_url}&since={last}", origin=cluster.base_url) as again:
                reconnected_at = time.monotonic()
                resumed = []
                while len(resumed) < 3:
                    message = json.loads(await asyncio.wait_for(again.recv(), timeout=10))
                    if message["type"] == "tick":
                        resumed.append(message["seq"])
            listed = await http.get("/api/v1/drafts/", headers=auth)
            return index, seqs, resumed, listed, reconnected_at - killed_at

    index, seqs, resumed, listed, reconnect_seconds = asyncio.run(scenario())
    restarted_at = time.monotonic()
    cluster.cluster.start_instance(index)
    failed_reads = len(outcome["reads"]) - outcome["reads"].count(200)
    report(f"instance killed: reads failed {failed_reads} of {len(outcome['reads'])}")
    report(f"instance killed: draft creates answered non-201 {outcome['write_errors']}")
    report(f"instance killed: WebSocket client back on the survivor after {reconnect_seconds:.2f}s")
    report(f"instance killed: restarted and healthy in {time.monotonic() - restarted_at:.2f}s")

    assert outcome["reads"] == [200] * 60
    assert len(outcome["acknowledged"]) == outcome["keys"] == 60
    assert {draft["id"] for draft in listed.json()} == outcome["acknowledged"]
    assert seqs == list(range(seqs[0], seqs[-1] + 1))
    assert resumed == [seqs[-1] + 1, seqs[-1] + 2, seqs[-1] + 3]


def test_while_redis_is_down_readyz_says_so_reads_answer_drafts_503_then_it_recovers(
    cluster: ClusterUnderTest,
):
    auth = bearer(cluster.token("alice")["access"])
    with cluster.client() as http:
        kept = http.post("/api/v1/drafts/", json={"title": "Before the restart"}, headers=auth)
        cluster.stop_redis()
        try:
            ready = http.get("/readyz")
            products = [http.get(f"/api/v1/products/{n}/") for n in (21, 22)]
            drafts = http.get("/api/v1/drafts/", headers=auth)
            create = http.post("/api/v1/drafts/", json={"title": "During"}, headers=auth)
        finally:
            started = time.monotonic()
            cluster.start_redis()
        support.wait_for(
            lambda: (
                http.get("/api/v1/drafts/", headers=auth).status_code == 200
                and http.get("/api/v1/drafts/", headers=auth).status_code == 200
            ),
            timeout=20,
            what="drafts to answer on both instances",
        )
        recovered = time.monotonic() - started
        after = http.get(kept.headers["location"], headers=auth)
    report(f"Redis restarted: drafts answer on both instances {recovered:.2f}s after its start")

    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"]["ok"] is False
    assert ready.json()["checks"]["database"] == {"ok": True}
    assert ready.json()["detail"] == "Not ready: redis unavailable."
    assert [(r.status_code, r.json()["id"]) for r in products] == [(200, 21), (200, 22)]
    assert (drafts.status_code, drafts.json()) == (503, REDIS_DOWN)
    assert (create.status_code, create.json()) == (503, REDIS_DOWN)
    assert (after.status_code, after.json()) == (200, kept.json())


def test_while_postgresql_is_stopped_cached_pages_are_served_stale_and_writes_503(
    cluster: ClusterUnderTest,
):
    admin = bearer(cluster.token("admin")["access"])
    product, listing = "/api/v1/products/14/", "/api/v1/products/?page_size=3"
    with cluster.client() as http:
        # Given: a write acknowledged, then both pages cached; the list only at the edge.
        etag = http.get(product).headers["etag"]
        written = http.patch(product, json={"stock": 41}, headers={**admin, "If-Match": etag})
        cached = [http.get(product), http.get(listing)]
        purge = http.post("/api/v1/gateway/purge/", json={"tags": ["products"]}, headers=admin)
        cluster.postgres.stop()
        try:
            ready = http.get("/readyz")
            during = [http.get(product), http.get(listing)]
            refused = http.patch(
                product, json={"stock": 1}, headers={**admin, "If-Match": written.headers["etag"]}
            )
        finally:
            started = time.monotonic()
            cluster.postgres.start()
        support.wait_for(
            lambda: http.get("/readyz").status_code == 200 == http.get("/readyz").status_code,
            timeout=20,
            what="both instances to be ready",
        )
        recovered = time.monotonic() - started
        after = http.get(product)
    report(f"PostgreSQL stopped: ready on both instances {recovered:.2f}s after its start")
    report(f"PostgreSQL stopped: answers {[r.headers.get('x-edge-cache') for r in during]}")

    assert (written.status_code, purge.status_code) == (200, 200)
    assert ready.json()["checks"]["database"]["ok"] is False
    assert [r.status_code for r in during] == [200, 200]
    assert [r.json() for r in during] == [r.json() for r in cached]
    # The list needs the database for its ETag: nginx served its copy (stale-if-error).
    assert during[1].headers["x-edge-cache"] == "STALE"
    assert (refused.status_code, refused.json()) == (503, DATABASE_DOWN)
    assert (after.json()["stock"], after.headers["etag"]) == (41, written.headers["etag"])


def test_the_killed_instance_is_back_in_the_rotation(cluster: ClusterUnderTest):
    with cluster.client() as http:
        served_by = {upstream(http.get("/api/v1/me/")) for _ in range(4)}

    assert len(served_by) == 2
