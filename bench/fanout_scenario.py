"""Measure the fan-out: bench/fanout.py's WebSocket or SSE clients against the chosen server.

Each run reads the delay of every tick to every client, with the server's CPU and memory meanwhile.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.measure import yield_to_servers
from bench.world import BENCH_DIR, World, say


def group_usage(leader_pid: int) -> tuple[float, int]:
    """Return the CPU seconds and resident bytes of a server and every process of its group."""
    cpu, rss = 0.0, 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != leader_pid:  # the process group: the server and its workers
                continue
            cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            rss += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return cpu, rss


def fanout(
    world: World, server: str, url: str, clients: int, seconds: float, sse: bool, rate: int
) -> dict:
    """Run bench/fanout.py against `server`, `rate` clients arriving a second; add the server's
    CPU share and memory meanwhile."""
    leader = dict(world.processes.started)[server].pid
    target = url if sse else url.replace("http://", "ws://", 1)
    argv = [sys.executable, str(BENCH_DIR / "fanout.py"), target, "--clients", str(clients),
            "--seconds", str(seconds), "--rate", str(rate),
            *(["--sse"] if sse else [])]  # fmt: skip
    return measure(leader, argv)


def measure(leader: int, argv: list[str]) -> dict:
    """Run the load generator `argv`; add the CPU and memory of the server group `leader` leads.

    CPU over the generator's recording window; memory at its end, and its growth from before the
    clients connected, per 1,000 clients (memory a previous run freed is reused, so a second run
    may grow less).
    """
    _, rss_before = group_usage(leader)
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, preexec_fn=yield_to_servers)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        cpu_before, _ = group_usage(leader)
        started = time.monotonic()
        last = process.stdout.readline() if first.startswith("RECORDING") else first
        cpu_after, rss = group_usage(leader)
        elapsed = time.monotonic() - started
        process.wait(timeout=120)
    finally:
        dev_stop(process)
    result = json.loads(last)
    cpu_percent = (cpu_after - cpu_before) / elapsed * 100
    per_1000 = 1000 / max(1, result["connected"])
    result["server_cpu_percent"] = round(cpu_percent, 1)
    result["server_rss_mb"] = round(rss / 2**20, 1)
    result["server_cpu_percent_per_1000"] = round(cpu_percent * per_1000, 2)
    result["server_mb_per_1000"] = round((rss - rss_before) / 2**20 * per_1000, 1)
    return result


def dev_stop(process: subprocess.Popen) -> None:
    """Stop a child of this process, forcefully if it does not exit in time."""
    from tests.support import stop

    stop(process)


def fanout_runs(
    world: World, server: str, url: str, sizes: str, rounds: int, rate: int
) -> list[dict]:
    """Run each fan-out of `sizes` (N WebSockets, sse:N SSE streams) `rounds` times, `rate`
    clients arriving a second; list them."""
    rows = []
    for size in sizes.split(","):
        sse = size.startswith("sse:")
        clients = int(size.removeprefix("sse:"))
        for number in range(rounds):
            kind = "sse" if sse else "websocket"
            say(f"fan-out: {clients} {kind} clients, run {number + 1}")
            row = fanout(world, server, url, clients, 10, sse=sse, rate=rate)
            rows.append({"kind": kind, "arrivals_per_s": rate, **row})
    return rows
