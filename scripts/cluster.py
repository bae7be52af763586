#!/usr/bin/env python
"""Start N app instances behind nginx, as several machines would run them; stop it all on exit.

    python scripts/cluster.py [--instances N]     what `make cluster [N=2]` does

N daphne instances, one Celery worker, one beat, Redis (REDIS_URL, else a private one) and the
database (DATABASE_URL, else the SQLite file under VAR_DIR), with nginx in front on PORT (8000 by
default), configured from deploy/nginx.conf. tests/system/ builds the same topology with `start`.
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

from config import env

BASE_DIR = dev.BASE_DIR
BIN_DIR = dev.BIN_DIR
NGINX_TEMPLATE = BASE_DIR / "deploy" / "nginx.conf"


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
        argv = [str(BIN_DIR / "daphne"), "-b", "127.0.0.1", "-p", str(port),
                "--access-log", os.devnull, "config.asgi:application"]  # fmt: skip
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
        self.processes.started.append((name, process))

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
    """Start `instances` daphnes, a Celery worker, one beat and nginx in front of them.

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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2, help="app instances (default 2)")
    instances = parser.parse_args(argv).instances
    if instances < 1:
        parser.error("--instances must be at least 1")
    dev.die_with_parent()
    for signum in dev.STOP_SIGNALS:
        dev.signal.signal(signum, dev.raise_stop)
    port = env.integer("PORT", 8000, minimum=1, maximum=65535)
    var_dir, child_env = dev.demo_environment()
    processes = dev.Processes()
    try:
        child_env["REDIS_URL"] = dev.configured_redis(processes, var_dir / "redis")
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
        ]
        return dev.serve_until_a_child_exits(processes, urls, accounts)
    except dev.Stop as stop:
        dev.say(f"{stop} received; stopping")
        return 0
    finally:
        processes.stop_all()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
