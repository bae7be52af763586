"""Measure the HTTP scenarios with wrk: the product and `me` paths on every server, then more paths.

The servers comparison (`core`): a HIT, a 304, an app-cache hit, an uncached product and JWT `me`
on each server beside nginx, and each server's score over that mix. Then on `make run`'s server
only (`extra`): a draft read, `me` with and without the throttle, a quotes burst at 200 connections,
and the throttle's Redis round trips. And `hot`: a HIT and a 304 alone, for a quick before/after.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request

from bench.measure import drop_caches, eval_calls, http, primaries, wrk
from bench.report import summarise, table
from bench.world import ASGI_SERVERS, World, say


class Bench:
    """The scenarios, measured round after round against the servers of one World."""

    def __init__(self, world: World, urls: dict[str, str], nginx_url: str | None, seconds: float):
        self.world, self.urls, self.nginx_url, self.seconds = world, urls, nginx_url, seconds
        self.product = "/api/v1/products/1/"
        self.rounds: list[dict[str, dict]] = []

    def warm(self, server: str) -> tuple[str, bytes]:
        """Fill both caches with product 1 through `server`; return its ETag and body."""
        try:
            with urllib.request.urlopen(self.urls[server] + self.product, timeout=10) as response:
                return response.headers["ETag"], response.read()
        except urllib.error.HTTPError as error:
            raise SystemExit(
                f"[bench] {server} answered {error.code} to {self.product}; "
                f"the end of its log:\n{self.world.log_tail(server)}"
            ) from None

    def user(self) -> dict[str, str]:
        """Return the headers that authenticate as the non-staff user."""
        return {"Authorization": f"Bearer {self.world.user_token}"}

    def core(self, server: str, through_gateway: bool) -> dict[str, dict]:
        """Measure the product and `me` paths on one server."""
        url, s = self.urls[server], self.seconds
        etag, _ = self.warm(server)
        results = {}
        if through_gateway:
            results["hit"] = wrk(url + self.product, seconds=s)
            results["not_modified"] = wrk(
                url + self.product, seconds=s, headers={"If-None-Match": etag}
            )
            results["app_hit"] = wrk(
                url + self.product, seconds=s, headers={"Cache-Control": "no-store"}
            )
        else:  # no gateway: a plain GET is the app cache's hit
            results["app_hit"] = wrk(url + self.product, seconds=s)
        results["me"] = wrk(url + "/api/v1/me/", seconds=s, headers=self.user())
        drop_caches()
        results["uncached"] = wrk(
            url + "/", seconds=s, mode="rotate", prefix="/api/v1/products/", first=1
        )
        drop_caches()
        self.warm(server)
        return results

    def extra(self, server: str, unthrottled_url: str, draft_path: str) -> dict[str, dict]:
        """Measure a draft read, `me` with and without the throttle, a quotes burst on `server`."""
        url, s = self.urls[server], self.seconds
        me = "/api/v1/me/"
        return {
            "draft": wrk(url + draft_path, seconds=s, headers=self.user()),
            "me_c1_throttled": wrk(url + me, seconds=s, connections=1, headers=self.user()),
            "me_c1_unthrottled": wrk(
                unthrottled_url + me, seconds=s, connections=1, headers=self.user()
            ),
            "me_unthrottled": wrk(unthrottled_url + me, seconds=s, headers=self.user()),
            "quotes_burst": wrk(url + "/api/v1/quotes/ACME/", seconds=s, connections=200),
        }

    def nginx(self) -> dict | None:
        """Measure nginx serving the same bytes as a file (None without nginx)."""
        if self.nginx_url is None:
            return None
        return wrk(self.nginx_url + "/product.json", seconds=self.seconds)


def compare_servers(bench: Bench, rounds: int) -> dict[str, dict]:
    """Measure the product and `me` paths on every server, round after round; summarise each."""
    core_rounds: dict[str, list[dict]] = {s: [] for s in bench.urls}
    for number in range(rounds):
        for server in bench.urls:
            measured = {"nginx": bench.nginx()}
            measured.update(bench.core(server, bench.world.kinds[server] in ASGI_SERVERS))
            core_rounds[server].append(measured)
            say(f"round {number + 1}: {server} done")
    return {s: summarise(r) for s, r in core_rounds.items()}


def geometric_mean(values: list[float]) -> float:
    """Return the geometric mean of positive values."""
    return math.exp(sum(math.log(v) for v in values) / len(values))


def mix_scores(core: dict[str, dict], servers: list[str]) -> dict[str, float]:
    """Return each server's geometric mean of req/s over the mix (1.0 each without `core`)."""
    if not core:
        return {s: 1.0 for s in servers}
    return {
        s: geometric_mean([core[s][k]["rps"] for k in ("hit", "app_hit", "uncached", "me")])
        for s in servers
    }


def server_for_scenarios(servers: list[str], default: str) -> str:
    """Return the server the other scenarios run on: `make run`'s `default` when measured.

    Not the mix's winner: on a noisy machine that changes from run to run by a few percent, and
    the scenarios (fan-out above all) would then measure a different server each time.
    """
    return default if default in servers else servers[0]


def measure_extra(
    world: World, bench: Bench, urls: dict[str, str], main_server: str, rounds: int, results: dict
) -> None:
    """Measure the paths of `main_server` only, and the throttle's cost; add them to results."""
    unthrottled = world.start("unthrottled", main_server, app="bench.unthrottled:application")
    status, _, draft = http(
        "POST", urls[main_server] + "/api/v1/drafts/",
        body={"title": "bench", "body": "x" * 500},
        headers=bench.user(),
    )  # fmt: skip
    assert status == 201, status
    extra_rounds = []
    for number in range(rounds):
        measured = {"nginx": bench.nginx()}
        measured.update(bench.extra(main_server, unthrottled, f"/api/v1/drafts/{draft['id']}/"))
        extra_rounds.append(measured)
        say(f"round {number + 1}: more paths done")
    results["extra"] = summarise(extra_rounds)
    results["throttle"] = throttle_cost(bench, urls[main_server], unthrottled, results["extra"])


def throttle_cost(bench: Bench, url: str, unthrottled_url: str, c1: dict[str, dict]) -> dict:
    """Return the throttle's Redis round trips and, from `c1`'s `me` at one connection, its cost.

    `c1` holds the summaries of me_c1_throttled (`url`) and me_c1_unthrottled (`unthrottled_url`).
    """
    throttled = round_trips(url, bench.user(), "/api/v1/me/")
    unthrottled_scripts = round_trips(unthrottled_url, bench.user(), "/api/v1/me/")
    return {
        "scripts_per_me": throttled,
        "scripts_per_me_unthrottled": unthrottled_scripts,
        "throttle_scripts_per_request": throttle_scripts_per_request(
            url, bench.user(), "/api/v1/me/"
        ),
        "scripts_per_hit": round_trips(url, None, bench.product),
        "p50_overhead_ms": round(
            c1["me_c1_throttled"]["p50_ms"] - c1["me_c1_unthrottled"]["p50_ms"], 3
        ),
        "c1_throughput_cost": round(
            1 - c1["me_c1_throttled"]["rps"] / c1["me_c1_unthrottled"]["rps"], 4
        ),
    }


def round_trips(url: str, headers: dict[str, str] | None = None, path: str = "") -> float:
    """Return the Redis scripts run per request of `path` (wrk, 2 s, 8 connections)."""
    before = eval_calls()
    result = wrk(url + path, seconds=2, connections=8, headers=headers)
    return round((eval_calls() - before) / result["requests"], 3)


def throttle_scripts_per_request(
    url: str, headers: dict[str, str], path: str, requests: int = 200
) -> float:
    """Return how often the throttle's own script ran per request, in Redis's MONITOR stream.

    Redis's command counts also hold the other scripts that run meanwhile (the quote ticks, the
    cache lookups), so this counts the throttle's script by its SHA1 (or its text, with EVAL).
    On a Redis Cluster each primary's stream is read: a node shows only the commands it runs.
    """
    import contextlib
    import http.client
    import threading
    from urllib.parse import urlsplit

    from gateway.throttling import GCRA, RUN_GCRA

    done = f"bench-throttle-count-{time.monotonic_ns()}"
    address = urlsplit(url)

    def send_requests() -> None:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
        for _ in range(requests):
            connection.request("GET", path, headers=headers)
            connection.getresponse().read()
        connection.close()
        for node in nodes:
            node.echo(done)

    nodes = primaries()
    counted = 0
    with contextlib.ExitStack() as stack:
        monitors = [stack.enter_context(node.monitor()) for node in nodes]
        threading.Thread(target=send_requests, daemon=True).start()
        # Each node's stream up to the marker, which reaches every node after the last request.
        for monitor in monitors:
            for entry in monitor.listen():
                command = entry["command"]
                if done in command:
                    break
                if RUN_GCRA.sha in command or GCRA.strip().splitlines()[0] in command:
                    counted += 1
    return round(counted / requests, 3)


def hot_paths(world: World, tools: dict, server: str, rounds: int, seconds: float) -> int:
    """Measure only a HIT and a 304 on `server` beside nginx, round after round; print them."""
    url = world.start(server, server)
    bench = Bench(world, {server: url}, None, seconds)
    etag, body = bench.warm(server)
    bench.nginx_url = world.start_nginx(body) if tools["nginx"] else None
    measured = []
    for number in range(rounds):
        measured.append({
            "nginx": bench.nginx(),
            "hit": wrk(url + bench.product, seconds=seconds),
            "not_modified": wrk(url + bench.product, seconds=seconds,
                                headers={"If-None-Match": etag}),
        })  # fmt: skip
        say(f"round {number + 1}: hot paths done")
    summary = summarise(measured)
    print("\n".join(table(summary)))
    print(json.dumps({"server": server, "rounds": measured, "summary": summary}, indent=2))
    return 0
