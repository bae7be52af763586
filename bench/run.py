#!/usr/bin/env python
"""`make bench`: each path's throughput and latency beside nginx serving the same bytes, as ratios.

    .venv/bin/python bench/run.py [--rounds 3] [--seconds 3] [--quick] [--no-fanout]

Everything runs on this machine over loopback, in a temporary directory: a private Redis, a
SQLite database with 10,000 products, a Celery worker and beat, daphne, uvicorn and granian
(ASGI, the whole gateway), granian (WSGI: Django alone, for the miss comparison) and nginx. wrk is
the load generator. Each round measures nginx and then every scenario; each figure is the median of
the rounds, each ratio the median of the per-round ratios. All the processes are stopped by PID at
the end. Results: printed, and written to bench/results/latest.md and latest.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]
BENCH_DIR = BASE_DIR / "bench"
RESULTS_DIR = BENCH_DIR / "results"
sys.path[:0] = [str(BASE_DIR), str(BASE_DIR / "scripts")]

import dev  # noqa: E402  (scripts/dev.py: process handling shared with `make run`)

BIN = Path(sys.executable).parent
PRODUCTS = 10_000
KEY_PREFIX = "bench"
RATE = "1000000/sec"  # the throttle stays on, with a rate no benchmark reaches
# The ASGI servers run as `make run` runs them (scripts/dev.py server_argv), the gateway in front;
# and Django alone under a WSGI server, the baseline of a miss.
WSGI_BASELINE = ["granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port", "{port}",
                 "--workers", "{workers}", "--blocking-threads", "4", "--log-level", "warning",
                 "--no-access-log", "config.wsgi:application"]  # fmt: skip
ASGI_SERVERS = dev.SERVERS
# The gateway in front of Django's own ASGI handler, to price config.asgi's WSGI bridge; and the
# same with every middleware sync-only (bench/asgi_handler_sync.py).
OLD_PATH = "uvicorn, Django ASGI handler"
SYNC_MIDDLEWARE_PATH = "uvicorn, Django ASGI handler, sync-only middleware"


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


# --- tools ----------------------------------------------------------------------------------------


def ensure_tools() -> dict[str, bool]:
    """Install wrk and nginx from Debian when root and missing; say what stays missing."""
    missing = [name for name in ("wrk", "nginx") if not shutil.which(name)]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        say(f"installing {' '.join(missing)} (apt-get)")
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=apt_env, check=False, **quiet)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], env=apt_env, **quiet)
    found = {name: bool(shutil.which(name)) for name in ("wrk", "nginx")}
    if not found["wrk"]:
        raise SystemExit("[bench] wrk is needed (apt-get install wrk) and could not be installed")
    if not found["nginx"]:
        say("nginx is missing and could not be installed: the baseline is SKIPPED, no ratios")
    return found


def version_of(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    return (
        (result.stdout or result.stderr).strip().splitlines()[0] if result.returncode == 0 else "?"
    )


# --- the world under test -------------------------------------------------------------------------


class World:
    """The processes and data of one benchmark run."""

    def __init__(self, workdir: Path, workers: int) -> None:
        self.workdir = workdir
        self.workers = workers
        self.processes = dev.Processes()
        self.logs: dict[str, Path] = {}
        self.kinds: dict[str, str] = {}
        self.env: dict[str, str] = {}

    def start_redis(self) -> str:
        data_dir = self.workdir / "redis"
        data_dir.mkdir()
        socket_path = data_dir / "redis.sock"
        argv = [dev.redis_server_binary(), "--port", "0", "--unixsocket", str(socket_path),
                "--unixsocketperm", "700", "--dir", str(data_dir), "--appendonly", "no",
                "--save", "", "--logfile", str(data_dir / "redis.log")]  # fmt: skip
        self.processes.start("redis", argv, dict(os.environ))
        url = f"unix://{socket_path}"
        dev.wait_until(
            lambda: dev.redis_answers(url), timeout=15, what="Redis", processes=self.processes
        )
        return url

    def prepare(self) -> None:
        """Start Redis, make the database (10,000 products, two users) and the servers' env."""
        redis_url = self.start_redis()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DEBUG": "false",
            "SECRET_KEY": "bench-only-" + "x" * 40,
            "VAR_DIR": str(self.workdir),
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": KEY_PREFIX,
            "DATABASE_URL": f"sqlite:///{self.workdir / 'db.sqlite3'}",
            "LOG_LEVEL": "WARNING",  # as nginx below: no access log on the measured path
            "JWT_ACCESS_TOKEN_LIFETIME": "86400",
            "PYTHONUNBUFFERED": "1",
            **{f"GATEWAY_RATE_{p}": RATE for p in ("ANON", "USER", "AUTH", "WRITE", "CONNECT")},
        }
        os.environ.update(self.env)
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command

        from sessions_demo.tokens import token_pair_for

        call_command("migrate", verbosity=0)
        call_command("seed_catalog", products=PRODUCTS, verbosity=0)
        users = get_user_model().objects
        staff = users.create_user("bench-staff", password="bench-staff-pw", is_staff=True)
        user = users.create_user("bench-user", password="bench-user-pw")
        self.staff_token = token_pair_for(staff)["access"]
        self.user_token = token_pair_for(user)["access"]

    def start(self, name: str, kind: str, *, app: str = "config.asgi:application") -> str:
        port = dev_free_port()
        self.kinds[name] = kind
        if kind in ASGI_SERVERS:
            argv = dev.server_argv(kind, "127.0.0.1", port, self.workers, app=app)
        else:
            fields = {"port": str(port), "workers": str(self.workers)}
            argv = [str(BIN / WSGI_BASELINE[0]), *(p.format(**fields) for p in WSGI_BASELINE[1:])]
        self.spawn(name, argv, self.workdir / f"{name.split(',')[0]}-{port}.log")
        url = f"http://127.0.0.1:{port}"
        dev.wait_until(
            lambda: dev.http_ok(f"{url}/healthz"), timeout=60, what=name, processes=self.processes
        )
        return url

    def spawn(self, name: str, argv: list[str], log: Path) -> None:
        """Start a child in a session of its own, its output in `log`; stopped with the rest."""
        self.logs[name] = log
        with log.open("wb") as output:
            process = subprocess.Popen(
                argv, cwd=BASE_DIR, env=self.env, stdout=output, stderr=subprocess.STDOUT,
                preexec_fn=dev.die_with_parent, start_new_session=True,
            )  # fmt: skip
        self.processes.started.append((name, process))

    def log_tail(self, name: str, lines: int = 40) -> str:
        """Return the last lines of a child's log."""
        return "\n".join(self.logs[name].read_text(errors="replace").splitlines()[-lines:])

    def start_celery(self) -> None:
        celery = [str(BIN / "celery"), "-A", "config.celery:app"]
        for name, argv in (
            ("worker", [*celery, "worker", "--loglevel", "WARNING", "--concurrency", "1"]),
            ("beat", [*celery, "beat", "--loglevel", "WARNING", "-s", str(self.workdir / "beat")]),
        ):
            self.spawn(name, argv, self.workdir / f"{name}.log")

    def start_nginx(self, body: bytes) -> str:
        root = self.workdir / "static"
        root.mkdir()
        (root / "product.json").write_bytes(body)
        for path in (self.workdir, root):
            path.chmod(0o755)  # nginx's workers run as another user
        port = dev_free_port()
        temp = self.workdir / "nginx-temp"
        temp.mkdir()
        conf = self.workdir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(port=port, root=root, temp=temp, dir=self.workdir))
        argv = ["nginx", "-c", str(conf), "-p", str(self.workdir)]
        self.processes.start("nginx", argv, dict(os.environ))
        url = f"http://127.0.0.1:{port}"
        dev.wait_until(
            lambda: dev.http_ok(f"{url}/product.json"), timeout=15, what="nginx",
            processes=self.processes,
        )  # fmt: skip
        return url

    def stop(self) -> None:
        self.processes.stop_all()


NGINX_CONF = """
daemon off;
worker_processes auto;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body; proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi; uwsgi_temp_path {temp}/uwsgi; scgi_temp_path {temp}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ default_type application/json; }}
    }}
}}
"""


def dev_free_port() -> int:
    from tests.support import free_port

    return free_port()


# --- measuring ------------------------------------------------------------------------------------


def wrk(
    url: str,
    *,
    seconds: float,
    connections: int = 32,
    headers: dict[str, str] | None = None,
    **lua_env: str,
) -> dict:
    """Run wrk against `url`; return requests/s, p50/p99 in ms and the error counts."""
    threads = min(2, connections)
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "-s",
        str(BENCH_DIR / "wrk.lua"),
    ]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    lua = {f"BENCH_{k.upper()}": str(v) for k, v in lua_env.items()}
    result = subprocess.run(
        [*argv, url], capture_output=True, text=True, check=True,
        env={**os.environ, "BENCH_THREADS": str(threads), **lua},
    )  # fmt: skip
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "rps": round(figures["requests"] / (figures["duration_us"] / 1e6), 1),
        "p50_ms": round(figures["p50_us"] / 1000, 3),
        "p99_ms": round(figures["p99_us"] / 1000, 3),
        "requests": figures["requests"],
        "errors": figures["socket_errors"] + figures["bad_status"],
        **({"x_cache": figures["x_cache"]} if figures["x_cache"] else {}),
    }


def http(method: str, url: str, *, body: dict | None = None, headers: dict | None = None):
    """Return (status, headers, parsed body) of one request."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, response.headers, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, error.headers, None


def redis_client():
    import redis
    from django.conf import settings

    return redis.Redis.from_url(settings.REDIS_URL)


def drop_caches() -> None:
    """Empty the gateway's response cache and the catalog's app cache (both layers cold)."""
    client = redis_client()
    for pattern in (
        f"{KEY_PREFIX}:catalog:*",
        f"{KEY_PREFIX}:gw:cache:*",
        f"{KEY_PREFIX}:gw:tag:*",
    ):
        batch = []
        for key in client.scan_iter(match=pattern, count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)


def eval_calls() -> int:
    """Return how many scripts Redis has run (EVAL and EVALSHA): the gateway's round trips."""
    stats = redis_client().info("commandstats")
    return sum(stats.get(name, {}).get("calls", 0) for name in ("cmdstat_eval", "cmdstat_evalsha"))


def median_of(rounds: list[dict], field: str) -> float:
    return round(statistics.median(r[field] for r in rounds), 3)


# --- scenarios ------------------------------------------------------------------------------------


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
        return {"Authorization": f"Bearer {self.world.user_token}"}

    def core(self, server: str, through_gateway: bool) -> dict[str, dict]:
        """The product and `me` paths on one server."""
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
        """The paths measured on the chosen server only."""
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
        if self.nginx_url is None:
            return None
        return wrk(self.nginx_url + "/product.json", seconds=self.seconds)


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
    """
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
        redis_client().echo(done)

    counted = 0
    with redis_client().monitor() as monitor:
        threading.Thread(target=send_requests, daemon=True).start()
        for entry in monitor.listen():
            command = entry["command"]
            if done in command:
                break
            if RUN_GCRA.sha in command or GCRA.strip().splitlines()[0] in command:
                counted += 1
    return round(counted / requests, 3)


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

    import redis as redis_lib
    from django.conf import settings

    url = bench.urls[server]
    drop_caches()
    warm_up_seconds = read_every_product(url)
    time.sleep(1.5)  # the servers flush their metrics once a second: keep the warm-up's out
    client = redis_client()
    client.config_set("notify-keyspace-events", "K$")  # SET events: count app-cache fills
    pubsub = redis_lib.Redis.from_url(settings.REDIS_URL).pubsub()
    pubsub.psubscribe(f"__keyspace@*__:{KEY_PREFIX}:catalog:product:*")
    fills = 0
    stop = threading.Event()

    def count_fills() -> None:
        nonlocal fills
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.2)
            if not message or message["type"] != "pmessage" or message["data"] != b"set":
                continue
            if message["channel"].rsplit(b":", 1)[1].isdigit():  # an entry, not a lock
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
        pubsub.close()
        client.config_set("notify-keyspace-events", "")
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


# --- fan-out --------------------------------------------------------------------------------------


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


def fanout(world: World, server: str, url: str, clients: int, seconds: float, sse: bool) -> dict:
    """Run bench/fanout.py against `server`; add the server's CPU share and memory meanwhile."""
    leader = dict(world.processes.started)[server].pid
    target = url if sse else url.replace("http://", "ws://", 1)
    argv = [sys.executable, str(BENCH_DIR / "fanout.py"), target, "--clients", str(clients),
            "--seconds", str(seconds), *(["--sse"] if sse else [])]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
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
    result["server_cpu_percent"] = round((cpu_after - cpu_before) / elapsed * 100, 1)
    result["server_rss_mb"] = round(rss / 2**20, 1)
    return result


def dev_stop(process: subprocess.Popen) -> None:
    from tests.support import stop

    stop(process)


# --- report ---------------------------------------------------------------------------------------


def ratio(value: float, base: float | None) -> str:
    return f"{value / base:.1%}" if base else "n/a"


def summarise(rounds: list[dict[str, dict]], nginx_key: str = "nginx") -> dict[str, dict]:
    """Medians over rounds of each scenario, and the median of its per-round ratio to nginx."""
    summary = {}
    for name in rounds[0]:
        if name == nginx_key or rounds[0][name] is None:
            continue
        values = [r[name] for r in rounds]
        figures = {f: median_of(values, f) for f in ("rps", "p50_ms", "p99_ms")}
        figures["errors"] = sum(v["errors"] for v in values)
        if rounds[0].get(nginx_key):
            figures["of_nginx"] = round(
                statistics.median(r[name]["rps"] / r[nginx_key]["rps"] for r in rounds), 4
            )
        summary[name] = figures
    if rounds[0].get(nginx_key):
        values = [r[nginx_key] for r in rounds]
        summary[nginx_key] = {f: median_of(values, f) for f in ("rps", "p50_ms", "p99_ms")}
        summary[nginx_key]["errors"] = sum(v["errors"] for v in values)
        summary[nginx_key]["of_nginx"] = 1.0
    return summary


def table(summary: dict[str, dict]) -> list[str]:
    lines = [
        "| path | req/s | of nginx | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, f in summary.items():
        share = f"{f['of_nginx']:.1%}" if "of_nginx" in f else "n/a"
        lines.append(
            f"| {name} | {f['rps']:,.0f} | {share} | {f['p50_ms']:.2f} | {f['p99_ms']:.2f} "
            f"| {f['errors']} |"
        )
    return lines


def core_goals(core: dict, wsgi: dict) -> list[tuple[str, bool | None, str]]:
    """The goals about the product and `me` paths of the chosen server."""
    out = []
    hit, uncached = core["hit"], core["uncached"]
    out.append(("HIT >= 10% of nginx static", hit.get("of_nginx", 0) >= 0.10 if "of_nginx" in hit
                else None, f"{hit.get('of_nginx', 0):.1%}"))  # fmt: skip
    out.append(("HIT p99 < 10 ms at 32 connections", hit["p99_ms"] < 10, f"{hit['p99_ms']:.2f} ms"))
    nm = core["not_modified"]
    out.append(("304 at least as fast as a HIT", nm["rps"] >= hit["rps"] * 0.97,
                f"{nm['rps'] / hit['rps']:.2f}x the HIT"))  # fmt: skip
    out.append(("HIT >= 10x uncached", hit["rps"] >= 10 * uncached["rps"],
                f"{hit['rps'] / uncached['rps']:.1f}x"))  # fmt: skip
    for name, label in (("uncached", "uncached product"), ("me", "JWT me")):
        r = core[name]["rps"] / wsgi[name]["rps"]
        out.append((f"Miss within 2x of WSGI: {label}", r >= 0.5, f"{r:.2f}x the WSGI server"))
    return out


def goals(results: dict) -> list[tuple[str, bool | None, str]]:
    """Each goal of issue 7: (goal, met, the figures that say so)."""
    out = []
    core = results["core"].get(results["main"])
    if core:
        out += core_goals(core, results["core"]["granian-wsgi"])
    z = results.get("zipf")
    if z:
        out.append(("Zipf: gateway hit ratio >= 95%", z["gateway_hit_ratio"] >= 0.95,
                    f"{z['gateway_hit_ratio']:.2%}"))  # fmt: skip
        out.append(("Zipf: gateway + app cache >= 99%", z["combined_hit_ratio"] >= 0.99,
                    f"{z['combined_hit_ratio']:.2%}"))  # fmt: skip
        out.append(("Zipf: no stale read", z["stale_reads"] == 0,
                    f"{z['stale_reads']} stale of {z['writes_acknowledged']} writes"))  # fmt: skip
    for row in results.get("fanout", []):
        if row["kind"] == "websocket" and row["clients"] == 1000:
            ok = row["delay_p99_ms"] is not None and row["delay_p99_ms"] <= 100 and row["gaps"] == 0
            ok = ok and row["connected"] == row["clients"]
            out.append(("Fan-out: 1,000 at p99 <= 100 ms, 0 gaps", ok,
                        f"p99 {row['delay_p99_ms']} ms, {row['gaps']} gaps"))  # fmt: skip
    t = results.get("throttle")
    if t:
        extra = t["throttle_scripts_per_request"]
        out.append(("Throttle: one Redis round trip per request", extra == 1,
                    f"{extra} throttle scripts per request (MONITOR)"))  # fmt: skip
        out.append(("Throttle: p50 overhead < 0.3 ms", t["p50_overhead_ms"] < 0.3,
                    f"{t['p50_overhead_ms']:.3f} ms"))  # fmt: skip
    return out


def report(results: dict) -> str:
    lines = [
        "# `make bench` results",
        "",
        f"{results['when']} · {results['machine']} · wrk -c32 (-c200 for quotes), "
        f"{results['rounds']} rounds of {results['seconds']} s, medians; ratios to nginx are the "
        "median of each round's ratio.",
        "",
        f"## Product and auth paths, by server (gateway on; `{results['main']}` chosen)",
    ]
    for server, summary in results["core"].items():
        lines += ["", f"### {server}", "", *table(summary)]
    if "extra" in results:
        lines += ["", f"## More paths on {results['main']}", "", *table(results["extra"])]
    if t := results.get("throttle"):
        lines += ["", "## Throttle", "", "```", json.dumps(t, indent=2), "```"]
    if z := results.get("zipf"):
        lines += ["", "## Zipf workload (s = 1.1, 10,000 products, 1 write/s)", "", "```",
                  json.dumps(z, indent=2), "```"]  # fmt: skip
    if results.get("fanout"):
        lines += ["", "## Fan-out (beat + worker tick once a second)", "",
                  "| kind | clients | connected | p50 ms | p99 ms | gaps | server CPU | RSS "
                  "| client CPU |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for row in results["fanout"]:
            lines.append(
                f"| {row['kind']} | {row['clients']:,} | {row['connected']:,} | "
                f"{row['delay_p50_ms']} | {row['delay_p99_ms']} | {row['gaps']} | "
                f"{row['server_cpu_percent']}% | {row['server_rss_mb']} MB | "
                f"{row['client_cpu_percent']}% |"
            )
    lines += ["", "## Goals", "", "| goal | met | figure |", "|---|---|---|"]
    for goal, met, figure in results["goals"]:
        mark = "yes" if met else "n/a" if met is None else "**no**"
        lines.append(f"| {goal} | {mark} | {figure} |")
    return "\n".join(lines) + "\n"


# --- main -----------------------------------------------------------------------------------------


def measure_extra(
    world: World, bench: Bench, urls: dict[str, str], main_server: str, rounds: int, results: dict
) -> None:
    """The paths measured on the chosen server only, and the throttle's cost."""
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
    extra = results["extra"]
    throttled = round_trips(urls[main_server], bench.user(), "/api/v1/me/")
    unthrottled_scripts = round_trips(unthrottled, bench.user(), "/api/v1/me/")
    results["throttle"] = {
        "scripts_per_me": throttled,
        "scripts_per_me_unthrottled": unthrottled_scripts,
        "throttle_scripts_per_request": throttle_scripts_per_request(
            urls[main_server], bench.user(), "/api/v1/me/"
        ),
        "scripts_per_hit": round_trips(urls[main_server], None, bench.product),
        "p50_overhead_ms": round(
            extra["me_c1_throttled"]["p50_ms"] - extra["me_c1_unthrottled"]["p50_ms"], 3
        ),
        "c1_throughput_cost": round(
            1 - extra["me_c1_throttled"]["rps"] / extra["me_c1_unthrottled"]["rps"], 4
        ),
    }


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


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s, fan-out to 1,000")
    parser.add_argument("--no-fanout", action="store_true")
    parser.add_argument("--servers", default=",".join(ASGI_SERVERS))
    parser.add_argument("--zipf-seconds", type=float, default=20, help="its measured window")
    parser.add_argument(
        "--fanout-sizes", default=None,
        help="WebSocket clients of each fan-out run, comma-separated (default 100,1000,5000; "
        "--quick 100,1000); sse:N for SSE streams (default sse:1000)",
    )  # fmt: skip
    parser.add_argument("--fanout-rounds", type=int, default=1, help="repeat each fan-out run")
    parser.add_argument(
        "--only", default="core,extra,zipf,fanout",
        help="scenarios, comma-separated: core, extra, zipf, fanout; or hot (HIT and 304 beside "
        "nginx on the first of --servers, for a quick before/after)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.zipf_seconds = 1, 2, 10
    servers = args.servers.split(",")
    only = set(args.only.split(","))
    if args.no_fanout:
        only.discard("fanout")
    dev.die_with_parent()
    for signum in dev.STOP_SIGNALS:
        signal.signal(signum, dev.raise_stop)
    tools = ensure_tools()
    workdir = Path(tempfile.mkdtemp(prefix="sc-bench-"))
    world = World(workdir, workers=os.cpu_count() or 1)
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
        if only == {"hot"}:
            return hot_paths(world, tools, servers[0], args.rounds, args.seconds)
        urls = {kind: world.start(kind, kind) for kind in (*servers, "granian-wsgi")}
        if "uvicorn" in servers and "core" in only:
            urls[OLD_PATH] = world.start(OLD_PATH, "uvicorn", app="bench.asgi_handler:application")
            urls[SYNC_MIDDLEWARE_PATH] = world.start(
                SYNC_MIDDLEWARE_PATH, "uvicorn", app="bench.asgi_handler_sync:application"
            )
        bench = Bench(world, urls, None, args.seconds)
        _, body = bench.warm(servers[0])
        bench.nginx_url = world.start_nginx(body) if tools["nginx"] else None
        say(f"servers up ({', '.join(urls)}); {args.rounds} rounds of {args.seconds} s each")
        core_rounds: dict[str, list[dict]] = {s: [] for s in urls if "core" in only}
        for number in range(args.rounds if "core" in only else 0):
            for server in urls:
                measured = {"nginx": bench.nginx()}
                measured.update(bench.core(server, world.kinds[server] in ASGI_SERVERS))
                core_rounds[server].append(measured)
                say(f"round {number + 1}: {server} done")
        results["core"] = {s: summarise(r) for s, r in core_rounds.items()}
        score = (
            {s: 1.0 for s in servers}
            if "core" not in only
            else {
                s: geometric_mean(
                    [results["core"][s][k]["rps"] for k in ("hit", "app_hit", "uncached", "me")]
                )
                for s in servers
            }
        )
        main_server = max(score, key=score.get)
        results["main"], results["server_scores"] = main_server, score
        say(
            f"fastest for the mix: {main_server} "
            f"({', '.join(f'{s} {v:,.0f}' for s, v in score.items())})"
        )

        if "extra" in only:
            measure_extra(world, bench, urls, main_server, args.rounds, results)
        if "zipf" in only:
            say("zipf workload")
            results["zipf"] = zipf_workload(bench, main_server, args.zipf_seconds)
        if "fanout" in only:
            results["fanout"] = []
            default_sizes = "100,1000,sse:1000" if args.quick else "100,1000,5000,sse:1000"
            for size in (args.fanout_sizes or default_sizes).split(","):
                sse = size.startswith("sse:")
                clients = int(size.removeprefix("sse:"))
                for number in range(args.fanout_rounds):
                    kind = "sse" if sse else "websocket"
                    say(f"fan-out: {clients} {kind} clients, run {number + 1}")
                    row = fanout(world, main_server, urls[main_server], clients, 10, sse=sse)
                    results["fanout"].append({"kind": kind, **row})
        results["goals"] = goals(results)
    except dev.Stop as stop:
        say(f"{stop} received; stopping")
        return 1
    finally:
        world.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    RESULTS_DIR.mkdir(exist_ok=True)
    text = report(results)
    (RESULTS_DIR / "latest.md").write_text(text)
    (RESULTS_DIR / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(text)
    say(f"written to {RESULTS_DIR / 'latest.md'} and latest.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
