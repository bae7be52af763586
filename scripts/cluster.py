#!/usr/bin/env python
"""Start N app instances behind nginx, as several machines would run them; stop it all on exit.

    python scripts/cluster.py [--instances N] [--redis server|sentinel|cluster]
                                              what `make cluster [N=2] [REDIS=...]` does

N uvicorn instances (the server `make run` starts), one Celery worker, one beat, Redis and the
database (DATABASE_URL, else the SQLite file under VAR_DIR), with nginx in front on PORT (8000 by
default), configured from deploy/nginx.conf. tests/system/ builds the same topology with `start`.

Redis, by --redis (scripts/redis_topology.py starts the private topologies, under VAR_DIR):
    server    REDIS_URL, else one private server (the default)
    sentinel  a primary, 2 replicas and 3 sentinels; REDIS_URL=redis+sentinel://...;
              a fresh topology each start (its data under VAR_DIR is wiped)
    cluster   a Redis Cluster of 3 primaries and 3 replicas in REDIS_URL=redis+cluster://...,
              and one private server for the channel layer and the broker (REDIS_CHANNELS_URL,
              REDIS_BROKER_URL: channels-redis and kombu have no Redis Cluster client) and for
              any other consumer config/redis_wiring.py does not let use a cluster
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dev  # scripts/dev.py: the launcher this one builds on
import redis_topology

from config import env

BASE_DIR = dev.BASE_DIR
BIN_DIR = dev.BIN_DIR
NGINX_TEMPLATE = BASE_DIR / "deploy" / "nginx.conf"
REDIS_TOPOLOGIES = ("server", "sentinel", "cluster")
# Each Redis consumer's own variable (config/redis_wiring.py): set, it would win over REDIS_URL.
REDIS_CONSUMER_VARIABLES = (
    "REDIS_CACHE_URL",
    "REDIS_CHANNELS_URL",
    "REDIS_BROKER_URL",
    "REDIS_STORES_URL",
)


def nginx_binary() -> str | None:
    """Return the nginx executable (Debian puts it in /usr/sbin, often not on a user's PATH)."""
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)),
        None,
    )


def free_ports(count: int) -> list[int]:
    """Return `count` distinct TCP ports on 127.0.0.1 that nothing listens on right now."""
    # Held open together: ports asked for one at a time can come back twice.
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def render_nginx_conf(
    run_dir: Path, *, listen: str, purge_listen: str, app_ports: list[int]
) -> Path:
    """Fill in deploy/nginx.conf for this run; return the path of the result."""
    servers = "\n        ".join(
        # max_fails=1: one refused connection takes an instance out for fail_timeout (its retry
        # goes to the next one), so a dead instance costs at most one failed attempt a second.
        f"server 127.0.0.1:{port} max_fails=1 fail_timeout=1s;"
        for port in app_ports
    )
    text = NGINX_TEMPLATE.read_text()
    for name, value in {
        "RUN_DIR": str(run_dir),
        "LISTEN": listen,
        "PURGE_LISTEN": purge_listen,
        "APP_SERVERS": servers,
    }.items():
        text = text.replace("{{" + name + "}}", value)
    if re.search(r"\{\{[A-Z_]+\}\}", text):
        raise SystemExit(
            f"[cluster] {NGINX_TEMPLATE} has a placeholder this launcher does not fill"
        )
    path = run_dir / "nginx.conf"
    path.write_text(text)
    return path


def spawn(name: str, argv: list[str], child_env: dict[str, str], log: Path | None):
    """Start one child as dev.Processes does, its output to `log` (None: this terminal)."""
    output = log.open("ab") if log else None
    try:
        return subprocess.Popen(
            argv,
            env=child_env,
            cwd=BASE_DIR,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
            preexec_fn=dev.die_with_parent,
            start_new_session=True,
        )
    finally:
        if output:
            output.close()


@dataclass
class Cluster:
    """The running topology: what the tests and the launcher need to reach and to stop."""

    processes: dev.Processes
    run_dir: Path
    child_env: dict[str, str]
    base_url: str
    purge_url: str
    app_ports: list[int]
    log_dir: Path | None
    instances: list = field(default_factory=list)

    def start_instance(self, index: int) -> None:
        """Start (or start again) instance `index` on its port, and wait until it answers."""
        port = self.app_ports[index]
        # One worker: uvicorn then serves in this very process, so killing it kills the instance.
        argv = dev.server_argv("uvicorn", "127.0.0.1", port, 1)
        log = self.log_dir / f"instance-{index}.log" if self.log_dir else None
        process = spawn(f"instance {index}", argv, self.child_env, log)
        self.adopt(f"instance {index}", process)
        if index < len(self.instances):
            self.instances[index] = process
        else:
            self.instances.append(process)
        dev.wait_until(
            lambda: dev.http_ok(f"http://127.0.0.1:{port}/healthz"),
            timeout=60,
            what=f"instance {index} on port {port}",
            processes=self.processes,
        )

    def adopt(self, name: str, process: subprocess.Popen) -> None:
        self.processes.adopt(name, process)

    def forget(self, process: subprocess.Popen) -> None:
        """Stop watching a child that was stopped on purpose (a fault), so it is not an error."""
        self.processes.started = [(n, p) for n, p in self.processes.started if p is not process]


def start(
    processes: dev.Processes,
    *,
    run_dir: Path,
    child_env: dict[str, str],
    instances: int = 2,
    port: int | None = None,
    log_dir: Path | None = None,
) -> Cluster:
    """Start `instances` uvicorn servers, a Celery worker, one beat and nginx in front of them.

    The database is migrated and Redis answers already; `child_env` names both.
    """
    binary = nginx_binary()
    if binary is None:
        raise SystemExit("[cluster] nginx is not installed: apt-get install nginx")
    run_dir.mkdir(parents=True, exist_ok=True)
    chosen, purge_port, *app_ports = free_ports(2 + instances)
    port = port or chosen
    cluster = Cluster(
        processes=processes,
        run_dir=run_dir,
        child_env={
            **child_env,
            # The gateway sends its purges to nginx, and trusts the one hop nginx adds.
            "GATEWAY_EDGE_PURGE_URLS": f"http://127.0.0.1:{purge_port}",
            "GATEWAY_TRUSTED_PROXY_HOPS": "1",
            "PYTHONUNBUFFERED": "1",
        },
        base_url=f"http://127.0.0.1:{port}",
        purge_url=f"http://127.0.0.1:{purge_port}",
        app_ports=app_ports,
        log_dir=log_dir,
    )
    for index in range(instances):
        cluster.start_instance(index)
    celery = [str(BIN_DIR / "celery"), "-A", "config.celery:app"]
    quiet = ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    for name, argv in [
        ("celery worker", [*celery, "worker", "--loglevel", "WARNING", "-c", "2", *quiet]),
        # Exactly one beat for the whole cluster: two would double every scheduled task.
        ("celery beat", [*celery, "beat", "--loglevel", "WARNING",
                         "-s", str(run_dir / "celerybeat-schedule")]),
    ]:  # fmt: skip
        log = log_dir / f"{name.replace(' ', '-')}.log" if log_dir else None
        cluster.adopt(name, spawn(name, argv, cluster.child_env, log))
    conf = render_nginx_conf(
        run_dir,
        listen=f"127.0.0.1:{port}",
        purge_listen=f"127.0.0.1:{purge_port}",
        app_ports=app_ports,
    )
    # -e: errors before the config is read go to our directory, not /var/log/nginx.
    nginx = [binary, "-p", str(run_dir), "-c", str(conf), "-e", str(run_dir / "error.log")]
    cluster.adopt(
        "nginx", spawn("nginx", nginx, cluster.child_env, log_dir and log_dir / "nginx.log")
    )
    dev.wait_until(
        lambda: dev.http_ok(f"{cluster.base_url}/healthz"),
        timeout=30,
        what="nginx",
        processes=processes,
    )
    return cluster


class Processes(dev.Processes):
    """dev.Processes that outlives a Redis data node: its topology fails over, the demo goes on."""

    def __init__(self) -> None:
        super().__init__()
        self.survivable: list[subprocess.Popen] = []

    def first_exited(self) -> tuple[str, int] | None:
        for name, process in list(self.started):
            if any(process is node for node in self.survivable) and process.poll() is not None:
                dev.say(f"{name} exited with status {process.returncode}; Redis fails over")
                redis_topology.forget(self, process)
        return super().first_exited()


def start_redis_cluster(
    processes: Processes, cluster_dir: Path, plain_dir: Path, child_env: dict[str, str]
) -> tuple[redis_topology.ClusterTopology, str, set[str]]:
    """Start a Redis Cluster and a plain server beside it; name them in `child_env`.

    Return the cluster, the plain server's URL and the variables that name the plain one.
    """
    cluster = redis_topology.start_cluster(processes, cluster_dir)
    processes.survivable += [process for _, process in cluster.nodes]
    # channels-redis and kombu speak to one server only: they, and any consumer the settings do
    # not let use a cluster (yet), get a plain one of their own.
    from config.redis_wiring import CONSUMER_VARIABLES, SUPPORTED_KINDS

    plain = dev.start_private_redis(processes, plain_dir)
    aside = {CONSUMER_VARIABLES["channels"], CONSUMER_VARIABLES["broker"]} | {
        CONSUMER_VARIABLES[consumer]
        for consumer, kinds in SUPPORTED_KINDS.items()
        if "cluster" not in kinds
    }
    child_env.update(dict.fromkeys(aside, plain), REDIS_URL=cluster.url)
    return cluster, plain, aside


def start_redis(
    processes: Processes, kind: str, var_dir: Path, child_env: dict[str, str]
) -> list[str]:
    """Start the Redis of `kind`, name it in `child_env`; return the banner's lines about it."""
    if kind == "server":
        child_env["REDIS_URL"] = dev.configured_redis(processes, var_dir / "redis")
        return [f"  Redis       one server, {child_env['REDIS_URL']}"]
    # The topology is the whole of Redis here: a variable left over from the environment (.env)
    # would send its consumer somewhere else.
    if ignored := [n for n in ("REDIS_URL", *REDIS_CONSUMER_VARIABLES) if child_env.pop(n, None)]:
        dev.say(f"--redis {kind}: ignoring {', '.join(ignored)} from the environment")
    if kind == "sentinel":
        sentinel = redis_topology.start_sentinel(processes, var_dir / "redis-sentinel")
        processes.survivable += [process for _, process in sentinel.data_nodes]
        child_env["REDIS_URL"] = sentinel.url
        replicas = ", ".join(f"127.0.0.1:{port}" for port, _ in sentinel.replicas)
        return [
            f"  Redis       Sentinel {sentinel.master_name}: primary 127.0.0.1:"
            f"{sentinel.primary[0]}, replicas {replicas} (kill -9 the primary: it fails over)",
            f"  REDIS_URL   {sentinel.url}",
            # Restarting on the old data would put node-0 back as primary and lose what a
            # failover's primary took in since (scripts/redis_topology.py, start_sentinel).
            "  Redis data  a fresh topology each start: drafts and ticks of the last run are gone",
            f"  Redis logs  {sentinel.run_dir}/node-*/redis.log, sentinel-*/sentinel.log",
        ]
    cluster, plain, aside = start_redis_cluster(
        processes, var_dir / "redis-cluster", var_dir / "redis", child_env
    )
    on_cluster = [name for name in REDIS_CONSUMER_VARIABLES if name not in aside]
    replicas = ", ".join(
        f"127.0.0.1:{port}" for port, _ in cluster.nodes if port not in cluster.seed_ports
    )
    return [
        f"  Redis       Cluster: primaries in REDIS_URL, replicas {replicas}",
        f"  REDIS_URL   {cluster.url}, for {', '.join(on_cluster) or 'no consumer yet'}",
        f"  plain       {plain}, for {', '.join(sorted(aside))}",
        f"  Redis logs  {cluster.run_dir}/node-*/redis.log, {var_dir / 'redis'}/redis.log",
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2, help="app instances (default 2)")
    parser.add_argument(
        "--redis",
        choices=REDIS_TOPOLOGIES,
        default="server",
        help="server: REDIS_URL, else a private one (default); sentinel; cluster",
    )
    arguments = parser.parse_args(argv)
    instances = arguments.instances
    if instances < 1:
        parser.error("--instances must be at least 1")
    dev.die_with_parent()
    for signum in dev.STOP_SIGNALS:
        dev.signal.signal(signum, dev.raise_stop)
    port = env.integer("PORT", 8000, minimum=1, maximum=65535)
    var_dir, child_env = dev.demo_environment()
    processes = Processes()
    try:
        redis_lines = start_redis(processes, arguments.redis, var_dir, child_env)
        dev.manage(child_env, "migrate", "--noinput", "--verbosity", "0")
        accounts = dev.manage(child_env, "seed_demo", "--if-debug")
        dev.manage(child_env, "seed_catalog", "--if-empty")
        cluster = start(
            processes,
            run_dir=var_dir / "cluster",
            child_env=child_env,
            instances=instances,
            port=port,
        )
        urls = [
            f"Stateless & Cacheable: {instances} instances behind nginx at {cluster.base_url}/",
            *(f"  instance {i}  http://127.0.0.1:{p}/" for i, p in enumerate(cluster.app_ports)),
            f"  nginx logs  {cluster.run_dir}/access.log, purge.log, error.log",
            "  served by   uvicorn, 1 worker per instance",
            *redis_lines,
        ]
        return dev.serve_until_a_child_exits(processes, urls, accounts)
    except dev.Stop as stop:
        dev.say(f"{stop} received; stopping")
        return 0
    finally:
        processes.stop_all()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
