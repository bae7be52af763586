"""Start the world `make bench` measures: Redis, the seeded database, the servers, Celery, nginx.

Also the tools it needs (wrk, nginx, installed when root and missing) and `say`, the harness's one
way of telling what it is doing. Every process is started in a session of its own and stopped by
PID (World.stop). A second World, for --redis sentinel or cluster, shares the first one's database
and users and runs its servers on a private topology instead (World.start_topology).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]
BENCH_DIR = BASE_DIR / "bench"
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
RUN_SERVER = dev.DEFAULT_SERVER  # `make run`'s
REDIS_TOPOLOGIES = ("server", "sentinel", "cluster")
# The gateway in front of Django's own ASGI handler, to price config.asgi's WSGI bridge; and the
# same with every middleware sync-only (bench/asgi_handler_sync.py).
OLD_PATH = "uvicorn, Django ASGI handler"
SYNC_MIDDLEWARE_PATH = "uvicorn, Django ASGI handler, sync-only middleware"


def say(message: str) -> None:
    """Print one line of the harness's progress, marked as the bench's."""
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
    """Return the first line a tool prints of its version ("?" when it fails)."""
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
        self.urls: dict[str, str] = {}
        self.env: dict[str, str] = {}

    def start_redis(self) -> str:
        """Start the private Redis, on a unix socket in the workdir; return its URL."""
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

    def start_topology(self, kind: str, base: World) -> str:
        """Start a private Redis `kind` (sentinel, cluster) for `base`'s data; say where it is.

        As `make cluster REDIS=<kind>` does (scripts/cluster.py, start_redis): the topology is the
        whole of Redis, but with a cluster the channel layer and the broker (no Cluster client in
        channels-redis or kombu) and any consumer the settings keep off one get a plain server.
        The database, its products and users are `base`'s, so are the tokens.
        """
        import redis_topology  # scripts/redis_topology.py, on sys.path above

        from config.redis_wiring import CONSUMER_VARIABLES, SUPPORTED_KINDS

        self.workdir.mkdir(exist_ok=True)
        # A consumer's own variable left over from the environment (.env) would send it elsewhere.
        self.env = {k: v for k, v in base.env.items() if k not in CONSUMER_VARIABLES.values()}
        self.staff_token, self.user_token = base.staff_token, base.user_token
        if kind == "sentinel":
            sentinel = redis_topology.start_sentinel(self.processes, self.workdir / "sentinel")
            self.env["REDIS_URL"] = sentinel.url
            return (
                f"Sentinel {sentinel.master_name}: a primary, {len(sentinel.replicas)} replicas, "
                f"{len(sentinel.sentinels)} sentinels; REDIS_URL={sentinel.url}"
            )
        cluster = redis_topology.start_cluster(self.processes, self.workdir / "cluster")
        plain = self.start_redis()
        aside = {CONSUMER_VARIABLES["channels"], CONSUMER_VARIABLES["broker"]} | {
            CONSUMER_VARIABLES[consumer]
            for consumer, kinds in SUPPORTED_KINDS.items()
            if "cluster" not in kinds
        }
        self.env.update(dict.fromkeys(aside, plain), REDIS_URL=cluster.url)
        primaries = len(cluster.seed_ports)
        return (
            f"Redis Cluster: {primaries} primaries, {len(cluster.nodes) - primaries} replicas; "
            f"REDIS_URL={cluster.url}; {', '.join(sorted(aside))} on one server"
        )

    def start(self, name: str, kind: str, *, app: str = "config.asgi:application") -> str:
        """Start `app` under the server `kind` as `name`; return its URL once it is healthy."""
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
        self.urls[name] = url
        return url

    def spawn(self, name: str, argv: list[str], log: Path) -> None:
        """Start a child in a session of its own, its output in `log`; stopped with the rest."""
        self.logs[name] = log
        with log.open("wb") as output:
            process = subprocess.Popen(
                argv, cwd=BASE_DIR, env=self.env, stdout=output, stderr=subprocess.STDOUT,
                preexec_fn=child_setup, start_new_session=True,
            )  # fmt: skip
        self.processes.started.append((name, process))

    def log_tail(self, name: str, lines: int = 40) -> str:
        """Return the last lines of a child's log."""
        return "\n".join(self.logs[name].read_text(errors="replace").splitlines()[-lines:])

    def start_celery(self) -> None:
        """Start a Celery worker and one beat: the quote ticks the fan-out streams carry."""
        celery = [str(BIN / "celery"), "-A", "config.celery:app"]
        for name, argv in (
            ("worker", [*celery, "worker", "--loglevel", "WARNING", "--concurrency", "1"]),
            ("beat", [*celery, "beat", "--loglevel", "WARNING", "-s", str(self.workdir / "beat")]),
        ):
            self.spawn(name, argv, self.workdir / f"{name}.log")

    def start_nginx(self, body: bytes) -> str:
        """Write `body` as nginx's static /product.json and start nginx; return its URL."""
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
        """Stop every process of this world, newest first."""
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


def child_setup() -> None:
    """In a child before it runs: die with this process, and as many open files as allowed."""
    dev.die_with_parent()
    # A server holds a socket per client: 20,000 fan-out clients need more than a soft limit of
    # 1,024 (the hard limit is what an unprivileged process may raise it to).
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def dev_free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    from tests.support import free_port

    return free_port()


def start_servers(world: World, servers: list[str], *, handler_variants: bool) -> dict[str, str]:
    """Start each of `servers` and the WSGI baseline; return their URLs by name.

    With `handler_variants`, also uvicorn serving the gateway in front of Django's own ASGI
    handler, and the same with every middleware sync-only: the core scenario prices both.
    """
    urls = {kind: world.start(kind, kind) for kind in (*servers, "granian-wsgi")}
    if handler_variants:
        urls[OLD_PATH] = world.start(OLD_PATH, "uvicorn", app="bench.asgi_handler:application")
        urls[SYNC_MIDDLEWARE_PATH] = world.start(
            SYNC_MIDDLEWARE_PATH, "uvicorn", app="bench.asgi_handler_sync:application"
        )
    return urls
