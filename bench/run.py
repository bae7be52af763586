#!/usr/bin/env python
"""`make bench`: each path's throughput and latency beside nginx serving the same bytes, as ratios.

    .venv/bin/python bench/run.py [--rounds 3] [--seconds 3] [--quick] [--no-fanout]
                                  [--purge-rounds 200]
                                  [--redis server|sentinel|cluster]

Everything runs on this machine over loopback, in a temporary directory: a private Redis, a
SQLite database with 10,000 products, a Celery worker and beat, daphne, uvicorn and granian
(ASGI, the whole gateway), granian (WSGI: Django alone, for the miss comparison) and nginx. wrk is
the load generator. Each round measures nginx and then every scenario; each figure is the median of
the rounds, each ratio the median of the per-round ratios. All the processes are stopped by PID at
the end. Results: printed, and written to bench/results/latest.md and latest.json.

--redis sentinel or cluster then measures a HIT, the throttle's cost and the Zipf workload on the
single server and, that world stopped, on a private Sentinel-managed primary or Redis Cluster
(the `topology` group, which it adds to --only): a table of both and their ratio.

This file parses the arguments and runs the scenarios in order; each lives in a file of its own:
world.py (the processes and data), http_scenarios.py (core, extra, hot), zipf.py,
purge_scenario.py, fanout_scenario.py (driving fanout.py), topology_scenario.py (--redis),
measure.py (wrk, the Redis counters) and report.py (tables, goals, results).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this directory is on sys.path but the project root is not: bench.* needs it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fanout_scenario import fanout_runs
from bench.http_scenarios import (
    Bench,
    compare_servers,
    hot_paths,
    measure_extra,
    mix_scores,
    server_for_scenarios,
)
from bench.purge_scenario import purge_latency
from bench.report import RESULTS_DIR, goals, previous_results, write_results
from bench.topology_scenario import compare_topology
from bench.world import (
    ASGI_SERVERS,
    PRODUCTS,
    REDIS_TOPOLOGIES,
    RUN_SERVER,
    World,
    dev,
    ensure_tools,
    say,
    start_servers,
    version_of,
)
from bench.zipf import zipf_workload


def main() -> int:
    """Parse the arguments, start the world, run the chosen scenarios in order and report them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s, fan-out to 1,000")
    parser.add_argument("--no-fanout", action="store_true")
    parser.add_argument("--servers", default=",".join(ASGI_SERVERS))
    parser.add_argument("--zipf-seconds", type=float, default=20, help="its measured window")
    parser.add_argument(
        "--fanout-sizes", default=None,
        help="WebSocket clients of each fan-out run, comma-separated (default 100,1000,5000,20000; "
        "--quick 100,1000); sse:N for SSE streams (default sse:1000)",
    )  # fmt: skip
    parser.add_argument("--fanout-rounds", type=int, default=1, help="repeat each fan-out run")
    parser.add_argument(
        "--fanout-rate", type=int, default=2000, help="fan-out clients arriving a second"
    )
    parser.add_argument(
        "--purge-rounds", type=int, default=200, help="purges of each kind (--quick 100)"
    )
    parser.add_argument(
        "--only", default="core,extra,zipf,purge,fanout",
        help="scenarios, comma-separated: core, extra, zipf, purge, fanout; or hot (HIT and 304 "
        "beside nginx on the first of --servers, for a quick before/after); topology (--redis's "
        "comparison alone)",
    )  # fmt: skip
    parser.add_argument(
        "--redis", choices=REDIS_TOPOLOGIES, default="server",
        help="server: one private Redis (default); sentinel or cluster: also a HIT, the throttle "
        "and Zipf on that topology, beside the single server's",
    )  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.zipf_seconds, args.purge_rounds = 1, 2, 10, 100
    servers = args.servers.split(",")
    only = set(args.only.split(","))
    if args.no_fanout:
        only.discard("fanout")
    if args.redis != "server":
        only.add("topology")
    elif "topology" in only:
        parser.error("--only topology needs --redis sentinel or --redis cluster")
    first = only - {"topology"}  # what runs on the single server before the topology, if any
    dev.die_with_parent()
    for signum in dev.STOP_SIGNALS:
        signal.signal(signum, dev.raise_stop)
    tools = ensure_tools()
    workdir = Path(tempfile.mkdtemp(prefix="sc-bench-"))
    world = World(workdir, workers=os.cpu_count() or 1)
    topology_world = World(workdir / "topology", workers=world.workers)
    results: dict = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{version_of(['nginx', '-v']) if tools['nginx'] else 'no nginx'}",
        "rounds": args.rounds,
        "seconds": args.seconds,
    }
    try:
        say(f"setting up in {workdir}: Redis, {PRODUCTS:,} products, users")
        world.prepare()
        world.start_celery()
        if first == {"hot"}:
            status = hot_paths(world, tools, servers[0], args.rounds, args.seconds)
            if "topology" not in only:
                return status
            results.update(core={}, main=servers[0])
        elif first:
            measure_single_server(world, tools, servers, only, args, results)
        else:  # --only topology
            results.update(core={}, main=servers[0])
        if "topology" in only:
            results["topology"] = compare_topology(
                world, topology_world, args.redis, results["main"], args.rounds, args.seconds,
                args.zipf_seconds,
            )  # fmt: skip
        results["goals"] = goals(results, previous_results())
    except dev.Stop as stop:
        say(f"{stop} received; stopping")
        return 1
    finally:
        topology_world.stop()
        world.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    text = write_results(results)
    print(text)
    say(f"written to {RESULTS_DIR / 'latest.md'} and latest.json")
    return 0


def measure_single_server(
    world: World, tools: dict, servers: list[str], only: set[str], args: argparse.Namespace,
    results: dict,
) -> None:  # fmt: skip
    """Start the servers and nginx, run the chosen scenarios of `only` in order; add to results."""
    urls = start_servers(world, servers, handler_variants="uvicorn" in servers and "core" in only)
    bench = Bench(world, urls, None, args.seconds)
    _, body = bench.warm(servers[0])
    bench.nginx_url = world.start_nginx(body) if tools["nginx"] else None
    say(f"servers up ({', '.join(urls)}); {args.rounds} rounds of {args.seconds} s each")
    results["core"] = compare_servers(bench, args.rounds) if "core" in only else {}
    score = mix_scores(results["core"], servers)
    scenario_server = results["main"] = server_for_scenarios(servers, RUN_SERVER)
    results["server_scores"] = score
    say(
        f"the other scenarios on {scenario_server}; the mix's scores: "
        f"{', '.join(f'{s} {v:,.0f}' for s, v in score.items())}"
    )

    if "extra" in only:
        measure_extra(world, bench, urls, scenario_server, args.rounds, results)
    if "zipf" in only:
        say("zipf workload")
        results["zipf"] = zipf_workload(bench, scenario_server, args.zipf_seconds)
    if "purge" in only:
        say(f"purge latency: {args.purge_rounds} rounds of each kind, two instances")
        results["purge"] = purge_latency(
            world, scenario_server, urls[scenario_server], args.purge_rounds
        )
    if "fanout" in only:
        default_sizes = "100,1000,sse:1000" if args.quick else "100,1000,5000,20000,sse:1000"
        results["fanout"] = fanout_runs(
            world, scenario_server, urls[scenario_server], args.fanout_sizes or default_sizes,
            args.fanout_rounds, args.fanout_rate,
        )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
