"""Issue 8's cluster: two instances behind nginx, a worker, a beat, private Redis and PostgreSQL.

One topology per test session (starting it takes seconds): the tests reach it through nginx only,
except where a fault is injected. Redis and PostgreSQL are private servers this fixture starts (in
a temporary directory, on a unix socket and a free port), so the fault tests may stop them without
touching anything the machine runs for others.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from tests import support
from tests.missing_tools import missing_tool

sys.path.insert(0, str(support.BASE_DIR / "scripts"))

import cluster as launcher
import dev
import redis_topology

# Logins through the cluster, per client IP, for the whole session: the throttle test spends this
# budget from an address of its own; the other tests log in from 127.0.0.1, far fewer times.
AUTH_RATE = "20/hour"
ACCOUNTS = {"admin": True, "alice": False, "bob": False}  # username: is_staff
PASSWORD = "cluster-test-password"
PRODUCTS = 30

CREATE_ACCOUNTS = """
from django.contrib.auth import get_user_model
for name, staff in {accounts!r}.items():
    user = get_user_model().objects.create_user(name, password={password!r})
    user.is_staff = user.is_superuser = staff
    user.save()
"""


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


class PrivatePostgres:
    """A PostgreSQL server of our own (initdb in a temporary directory), stopped by PID."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin_dir = bin_dir
        self.data = root / "pgdata"
        self.port = support.free_port()
        self.log = root / "postgres.log"
        self.process: subprocess.Popen | None = None
        # PostgreSQL refuses to run as root: when we are root, it runs as the postgres user.
        self.user = "postgres" if os.geteuid() == 0 else None
        root.mkdir(parents=True)
        if self.user:
            root.parent.chmod(0o755)  # mkdtemp's 0700 would keep the postgres user out
            shutil.chown(root, self.user)
        subprocess.run(
            [bin_dir / "initdb", "-D", self.data, "-U", "sc", "--auth=trust", "--no-sync"],
            check=True,
            capture_output=True,
            user=self.user,
        )
        self.url = f"postgres://sc@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        argv = [
            self.bin_dir / "postgres",
            "-D",
            self.data,
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.data}",
            "-c",
            "fsync=off",
        ]  # fmt: skip  (fsync guards against a machine crash, not this)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=log, user=self.user)
        support.wait_for(self.answers, timeout=30, what="the private PostgreSQL")

    def answers(self) -> bool:
        try:
            psycopg.connect(self.url, connect_timeout=1).close()
            return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        """Fast shutdown (SIGINT): clients are cut, every committed transaction is kept."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=30)


@dataclass
class ClusterUnderTest:
    """The running cluster, and the handles the fault tests need."""

    base_url: str
    cluster: launcher.Cluster
    postgres: PrivatePostgres
    redis_dir: Path
    redis_url: str  # the server; the instances use its database REDIS_TEST_DB

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10, **kwargs)

    def token(self, username: str, http: httpx.Client | None = None) -> dict:
        """Log in through the load balancer; return the token pair."""
        with self.client() as own:
            response = (http or own).post(
                "/api/v1/auth/token/", json={"username": username, "password": PASSWORD}
            )
        assert response.status_code == 200, response.text
        return response.json()

    def redis_process(self) -> subprocess.Popen:
        return next(p for name, p in self.cluster.processes.started if name == "redis")

    def stop_redis(self) -> None:
        process = self.redis_process()
        self.cluster.forget(process)
        support.stop(process)

    def start_redis(self) -> None:
        dev.start_private_redis(self.cluster.processes, self.redis_dir)

    def app_redis(self) -> redis.Redis:
        from config.redis_wiring import with_db

        database = int(os.environ.get("REDIS_TEST_DB", 15))
        return redis.Redis.from_url(with_db(self.redis_url, database), decode_responses=True)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> Iterator[ClusterUnderTest]:
    """Start the topology of `make cluster` once for the session; stop every process after it."""
    if launcher.nginx_binary() is None:
        pytest.skip(missing_tool("nginx"))
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip(missing_tool("postgresql"))
    logs = tmp_path_factory.mktemp("cluster-logs")
    # Short: unix socket paths must fit in 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="sc-cluster-"))
    processes = dev.Processes()
    postgres = None
    try:
        postgres = PrivatePostgres(bin_dir, root / "pg")
        postgres.start()
        redis_dir = root / "redis"
        redis_url = dev.start_private_redis(processes, redis_dir)
        env = support.child_env(
            DJANGO_SETTINGS_MODULE="config.settings.test",
            DATABASE_URL=postgres.url,
            REDIS_URL=redis_url,
            GATEWAY_RATE_AUTH=AUTH_RATE,
        )
        dev.manage(env, "migrate", "--noinput", "--verbosity", "0")
        dev.manage(env, "seed_catalog", "--products", str(PRODUCTS))
        dev.manage(env, "shell", "-c", CREATE_ACCOUNTS.format(accounts=ACCOUNTS, password=PASSWORD))
        running = launcher.start(
            processes, run_dir=root / "nginx", child_env=env, instances=2, log_dir=logs
        )
        yield ClusterUnderTest(running.base_url, running, postgres, redis_dir, redis_url)
    finally:
        processes.stop_all()
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


def upstream(response: httpx.Response) -> str:
    """Return the instance nginx sent this request to (the X-Upstream header it adds)."""
    return response.headers["x-upstream"].split(",")[-1].strip()


# --- A Sentinel-managed Redis under the same cluster (tests/system/test_redis_sentinel_faults.py)

# Anonymous requests per client IP in that topology: few, so that one test exhausts them (and no
# refill within a test run: one more every 3 minutes). Everything else there signs in.
SENTINEL_ANON_RATE = "20/hour"
SENTINEL_ACCOUNTS = {"alice": False, "bob": False, "carol": False, "dave": False}


@dataclass
class SentinelClusterUnderTest:
    """Two instances behind nginx on a Sentinel-managed primary with two replicas."""

    base_url: str
    cluster: launcher.Cluster
    topology: redis_topology.SentinelTopology
    postgres: PrivatePostgres
    logs: Path  # the instances', worker's, beat's and nginx's logs; redis/ holds the topology's

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30, **kwargs)

    def instance_urls(self) -> list[str]:
        """Each instance's own address, past nginx."""
        return [f"http://127.0.0.1:{port}" for port in self.cluster.app_ports]

    def token(self, username: str) -> dict:
        """Log in through the load balancer; return the token pair."""
        with self.client() as http:
            response = http.post(
                "/api/v1/auth/token/", json={"username": username, "password": PASSWORD}
            )
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def sentinel_cluster(tmp_path_factory) -> Iterator[SentinelClusterUnderTest]:
    """`make cluster REDIS=sentinel` with PostgreSQL, for one module; stop every process after it.

    A primary, two replicas and three sentinels (scripts/redis_topology.py) on free ports, never
    6379; their configs, data and logs stay in the module's log directory, beside the instances'.
    """
    if launcher.nginx_binary() is None:
        pytest.skip(missing_tool("nginx"))
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip(missing_tool("postgresql"))
    logs = tmp_path_factory.mktemp("sentinel-cluster-logs")
    root = Path(tempfile.mkdtemp(prefix="sc-sentinel-"))
    processes = dev.Processes()
    postgres = None
    try:
        postgres = PrivatePostgres(bin_dir, root / "pg")
        postgres.start()
        topology = redis_topology.start_sentinel(processes, logs / "redis")
        env = support.child_env(
            DJANGO_SETTINGS_MODULE="config.settings.test",
            DATABASE_URL=postgres.url,
            REDIS_URL=topology.url,
            GATEWAY_RATE_ANON=SENTINEL_ANON_RATE,
        )
        # The topology is the whole of Redis here, as with `make cluster REDIS=sentinel`.
        for name in launcher.REDIS_CONSUMER_VARIABLES:
            env.pop(name, None)
        dev.manage(env, "migrate", "--noinput", "--verbosity", "0")
        dev.manage(env, "seed_catalog", "--products", str(PRODUCTS))
        accounts = CREATE_ACCOUNTS.format(accounts=SENTINEL_ACCOUNTS, password=PASSWORD)
        dev.manage(env, "shell", "-c", accounts)
        running = launcher.start(
            processes, run_dir=root / "nginx", child_env=env, instances=2, log_dir=logs
        )
        yield SentinelClusterUnderTest(running.base_url, running, topology, postgres, logs)
    finally:
        processes.stop_all()
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(root, ignore_errors=True)
