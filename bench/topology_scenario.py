"""Measure a Redis topology beside one server: the HIT, the throttle's cost and the Zipf workload.

`--redis sentinel|cluster`. Both sides run the same code against the same server kind: first on
the world's single Redis; then, that world stopped (two cores should serve one world at a time),
on a private Sentinel-managed primary or Redis Cluster (scripts/redis_topology.py, as `make
cluster REDIS=…` starts them) with servers, a Celery worker and a beat of its own, the database and
its users shared. The ratios are the topology's figure over the single server's.
"""

from __future__ import annotations

from bench.http_scenarios import Bench, throttle_cost
from bench.measure import use_redis, wrk
from bench.report import summarise, topology_ratios
from bench.world import World, say
from bench.zipf import zipf_workload

UNTHROTTLED = "bench.unthrottled:application"


def redis_scenarios(
    bench: Bench, server: str, unthrottled_url: str, rounds: int, zipf_seconds: float
) -> dict:
    """Measure a HIT, `me` at one connection with and without the throttle, then the Zipf workload.

    Round after round for the first two (medians), as `hot` and `extra` measure them; the
    throttle's round trips and the Zipf workload once, as `extra` and `zipf` do.
    """
    url, me, user = bench.urls[server], "/api/v1/me/", bench.user()
    bench.warm(server)
    measured = []
    for number in range(rounds):
        measured.append({
            "hit": wrk(url + bench.product, seconds=bench.seconds),
            "me_c1_throttled": wrk(url + me, seconds=bench.seconds, connections=1, headers=user),
            "me_c1_unthrottled": wrk(
                unthrottled_url + me, seconds=bench.seconds, connections=1, headers=user
            ),
        })  # fmt: skip
        say(f"round {number + 1}: HIT and throttle done")
    summary = summarise(measured)
    summary["throttle"] = throttle_cost(bench, url, unthrottled_url, summary)
    say("zipf workload")
    summary["zipf"] = zipf_workload(bench, server, zipf_seconds)
    return summary


def servers_of(world: World, server: str) -> tuple[str, str]:
    """Return the URLs of `server` and of its unthrottled twin in `world`, started if need be."""
    url = world.urls.get(server) or world.start(server, server)
    unthrottled = world.urls.get("unthrottled") or world.start(
        "unthrottled", server, app=UNTHROTTLED
    )
    return url, unthrottled


def compare_topology(
    world: World,
    topology_world: World,
    kind: str,
    server: str,
    rounds: int,
    seconds: float,
    zipf_seconds: float,
) -> dict:
    """Measure the scenarios on `world`'s single Redis, stop it, then measure them on `kind`."""
    say(f"--redis {kind}: HIT, throttle and Zipf on the single server first ({server})")
    url, unthrottled = servers_of(world, server)
    single = redis_scenarios(
        Bench(world, {server: url}, None, seconds), server, unthrottled, rounds, zipf_seconds
    )
    world.stop()
    say(f"starting the {kind} topology in {topology_world.workdir}")
    where = topology_world.start_topology(kind, world)
    topology_world.start_celery()
    url, unthrottled = servers_of(topology_world, server)
    say(f"{where}; {server} up at {url}")
    use_redis(topology_world.env["REDIS_URL"])
    try:
        on_topology = redis_scenarios(
            Bench(topology_world, {server: url}, None, seconds),
            server, unthrottled, rounds, zipf_seconds,
        )  # fmt: skip
    finally:
        use_redis(None)
    return {
        "kind": kind,
        "server": server,
        "redis": where,
        "single": single,
        "topology": on_topology,
        "ratios": topology_ratios(single, on_topology),
    }
