"""Measure the Zipf workload: Zipf(1.1) reads of every product, a write a second, each read back.

Gives the gateway's hit ratio, the two layers' combined hit ratio and the stale reads (a read after
an acknowledged write that returns an older version).
"""

from __future__ import annotations

import time

from bench.http_scenarios import Bench
from bench.measure import drop_caches, http, primaries, redis_client, wrk
from bench.world import KEY_PREFIX, PRODUCTS


def read_every_product(url: str, connections: int = 16) -> float:
    """Read products 1..PRODUCTS once each through `url` (both caches filled); return seconds."""
    import http.client
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlsplit

    address = urlsplit(url)

    def read(first: int) -> None:
        # One keep-alive connection per worker: urllib would open one per request.
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        for product_id in range(first, PRODUCTS + 1, connections):
            connection.request("GET", f"/api/v1/products/{product_id}/")
            response = connection.getresponse()
            response.read()
            assert response.status == 200, (product_id, response.status)
        connection.close()

    started = time.monotonic()
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(read, range(1, connections + 1)))
    return round(time.monotonic() - started, 1)


def zipf_workload(bench: Bench, server: str, seconds: float) -> dict:
    """Zipf reads over every product with one acknowledged write a second, each read back.

    Measured in steady state: a warm-up first reads every product once (not counted). Both caches
    keep an entry an hour, and at this workload's rate even the least read of the 10,000 ids
    (p = 6e-6 per read) is read several times an hour, so in a running system every product is
    cached and a miss comes only from a write's purge. Without the warm-up the window measures
    the cold start: Zipf(1.1) needs ~200,000 reads before fewer than 1% of them are first reads.
    """
    import threading

    url = bench.urls[server]
    drop_caches()
    warm_up_seconds = read_every_product(url)
    time.sleep(1.5)  # the servers flush their metrics once a second: keep the warm-up's out
    # A node publishes the events of its own keys only: on a Redis Cluster, each primary's.
    nodes = primaries()
    for node in nodes:
        node.config_set("notify-keyspace-events", "K$")  # SET events: count app-cache fills
    pubsubs = [node.pubsub() for node in nodes]
    for pubsub in pubsubs:
        pubsub.psubscribe(f"__keyspace@*__:{KEY_PREFIX}:catalog:product:*")
    fills = 0
    stop = threading.Event()

    def is_fill(message: dict | None) -> bool:
        if not message or message["type"] != "pmessage" or message["data"] != b"set":
            return False
        # An entry (…:product:{42}), not its generation or fill lock.
        return message["channel"].rsplit(b":", 1)[1].strip(b"{}").isdigit()

    def count_fills() -> None:
        nonlocal fills
        while not stop.is_set():
            for pubsub in pubsubs:
                if is_fill(pubsub.get_message(timeout=0.2 / len(pubsubs))):
                    fills += 1

    stale, writes = [], 0
    staff = {"Authorization": f"Bearer {bench.world.staff_token}"}

    def write_every_second() -> None:
        nonlocal writes
        number = 0
        while not stop.wait(1.0):
            number += 1
            product_id = (number % 20) + 1  # the hottest products: the most readers to mislead
            _, headers, body = http("GET", f"{url}/api/v1/products/{product_id}/")
            status, _, updated = http(
                "PATCH", f"{url}/api/v1/products/{product_id}/",
                body={"stock": body["stock"] + 1}, headers={**staff, "If-Match": headers["ETag"]},
            )  # fmt: skip
            if status != 200:
                stale.append(f"write {product_id} answered {status}")
                continue
            writes += 1
            _, _, read = http("GET", f"{url}/api/v1/products/{product_id}/")
            if read["version"] != updated["version"] or read["stock"] != updated["stock"]:
                stale.append(
                    f"product {product_id}: read v{read['version']} after v{updated['version']}"
                )

    gateway_before = gateway_outcomes()
    threads = [threading.Thread(target=count_fills), threading.Thread(target=write_every_second)]
    for thread in threads:
        thread.start()
    try:
        result = wrk(url + "/", seconds=seconds, mode="zipf", prefix="/api/v1/products/",
                     n=PRODUCTS, s=1.1)  # fmt: skip
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for pubsub in pubsubs:
            pubsub.close()
        for node in nodes:
            node.config_set("notify-keyspace-events", "")
    time.sleep(1.5)  # the servers flush their metrics once a second
    seen = result.pop("x_cache")
    outcomes = {k: v - gateway_before.get(k, 0) for k, v in gateway_outcomes().items()}
    gets = sum(outcomes.values())
    gateway_hits = outcomes.get("HIT", 0) + outcomes.get("STALE", 0)
    app_misses = fills  # every app-cache miss stores the product it loaded
    return {
        **result,
        "warm_up_seconds": warm_up_seconds,
        "measured_seconds": seconds,
        "gateway_requests": gets,
        "gateway_outcomes": outcomes,
        "client_x_cache": seen,
        "gateway_hit_ratio": round(gateway_hits / gets, 4) if gets else 0,
        # As the clients saw it: requests collapsed onto another's fill are served from the cache.
        "client_hit_ratio": round(
            sum(n for k, n in seen.items() if k in ("HIT", "STALE")) / sum(seen.values()), 4
        ),
        "app_cache_fills": fills,
        "app_hit_ratio_of_gateway_misses": round(1 - app_misses / max(1, gets - gateway_hits), 4),
        "combined_hit_ratio": round(1 - app_misses / gets, 4) if gets else 0,
        "writes_acknowledged": writes,
        "stale_reads": len(stale),
        "stale_examples": stale[:5],
    }


def gateway_outcomes() -> dict[str, int]:
    """Return the cluster-wide counts of cache outcomes on the product detail route."""
    totals = redis_client().hgetall(f"{KEY_PREFIX}:gw:metrics:totals")
    outcomes: dict[str, int] = {}
    for field, value in totals.items():
        kind, *rest = field.decode().split("|")
        if kind == "cache" and len(rest) == 2 and rest[0].endswith(":product"):
            outcomes[rest[1]] = outcomes.get(rest[1], 0) + int(value)
    return outcomes
